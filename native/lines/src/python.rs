//! For the sinks' renderer modules: a `LogBatch.columns()` tuple, received from Python.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{columns, Lines};

/// `LogBatch.columns()`: the batch itself (its lines, through the buffer protocol), the
/// extras and the index.
pub type Columns<'py> = (PyBuffer<u8>, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// The batch's lines, borrowed from its buffer for as long as `columns` is held.
pub fn lines_of<'a>(columns: &'a Columns<'_>) -> PyResult<Lines<&'a [u8]>> {
    let (data, extras, index) = columns;
    if !data.is_c_contiguous() || data.dimensions() > 1 {
        return Err(PyValueError::new_err(
            "a LogBatch's lines are one flat buffer",
        ));
    }
    // SAFETY: a read-only, contiguous byte buffer, held (so alive and unchanged) by `data`.
    let bytes =
        unsafe { std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.item_count()) };
    columns::import(bytes, extras.as_bytes(), index.as_bytes())
        .map_err(|_| PyValueError::new_err("not a LogBatch's columns"))
}

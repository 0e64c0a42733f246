//! The Fluentd sink's renderer (`sinks.fluentd._render`): forward-protocol entries for a
//! whole batch in one call, from its column form (`LogBatch.columns()`).

pub mod forward;

use logdriver_lines::columns;
use logdriver_lines::text::with_scratch;
use logdriver_lines::Lines;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The batch's lines, borrowed from its buffer for the duration of the call.
fn lines_of<'a>(data: &'a PyBuffer<u8>, extras: &[u8], index: &[u8]) -> PyResult<Lines<&'a [u8]>> {
    if !data.is_c_contiguous() || data.dimensions() > 1 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a LogBatch's lines are one flat buffer",
        ));
    }
    // SAFETY: a read-only, contiguous byte buffer, held (so alive and unchanged) by `data`.
    let bytes =
        unsafe { std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.item_count()) };
    columns::import(bytes, extras, index)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("not a LogBatch's columns"))
}

/// Fluent forward entries (the PackedForward payload); see ``forward.rs``.
/// ``head``/``tail`` are packed key/value pairs placed before and after the line's own;
/// ``overridden`` flags the line's own fields that an extra in ``tail`` replaces.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn forward_entries<'py>(
    py: Python<'py>,
    columns: (PyBuffer<u8>, Bound<'py, PyBytes>, Bound<'py, PyBytes>),
    head: &[u8],
    head_pairs: usize,
    tail: &[u8],
    tail_pairs: usize,
    sub_second: bool,
    overridden: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns.0, columns.1.as_bytes(), columns.2.as_bytes())?;
    Ok(with_scratch(|out| {
        forward::forward_entries(
            &lines, head, head_pairs, tail, tail_pairs, sub_second, overridden, out,
        );
        PyBytes::new(py, out)
    }))
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(forward_entries, m)?)?;
    Ok(())
}

//! The Elasticsearch sink's renderer (`sinks.elasticsearch._render`): a bulk body for a
//! whole batch in one call, from its column form (`LogBatch.columns()`).

pub mod bulk;

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

/// A bulk body (see ``bulk.rs``): ``action_prefix(day)`` returns the action up to the
/// ``_id`` value for a UTC day number; ``doc_suffix`` ends each document.
#[pyfunction]
fn bulk_lines<'py>(
    py: Python<'py>,
    columns: (PyBuffer<u8>, Bound<'py, PyBytes>, Bound<'py, PyBytes>),
    container_id: &[u8],
    action_prefix: &Bound<'py, PyAny>,
    doc_suffix: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns.0, columns.1.as_bytes(), columns.2.as_bytes())?;
    with_scratch(|out| {
        bulk::bulk_lines(
            &lines,
            container_id,
            |day| action_prefix.call1((day,))?.extract::<Vec<u8>>(),
            doc_suffix,
            out,
        )?;
        Ok(PyBytes::new(py, out))
    })
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bulk_lines, m)?)?;
    Ok(())
}

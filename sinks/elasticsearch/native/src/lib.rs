//! The Elasticsearch sink's renderer (`logdriver_sinks.elasticsearch._render`): a bulk body for a
//! whole batch in one call, from its column form (`LogBatch.columns()`).

pub mod bulk;
pub mod ecs;

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::text::with_scratch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A bulk body (see ``bulk.rs``): ``action_prefix(day)`` returns the action up to the
/// ``_id`` value for a UTC day number; ``doc_suffix`` ends each document.
#[pyfunction]
fn bulk_lines<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    container_id: &[u8],
    action_prefix: &Bound<'py, PyAny>,
    doc_suffix: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
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

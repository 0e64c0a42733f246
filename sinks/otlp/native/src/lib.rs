//! The OTLP sink's renderer (`logdriver_sinks.otlp._render`): a container's batch as one OTLP
//! `ResourceLogs` message in one call, from its column form (`LogBatch.columns()`); the
//! sink joins the parts of one request into an `ExportLogsServiceRequest`.

pub mod logs;

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::text::with_scratch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// ``ResourceLogs`` (its body) of the batch, with the container's ``resource`` and
/// ``scope`` messages as encoded once per container.
#[pyfunction]
fn resource_logs<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    resource: &[u8],
    scope: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
    Ok(with_scratch(|out| {
        logs::resource_logs(&lines, resource, scope, out);
        PyBytes::new(py, out)
    }))
}

/// A ``Resource`` message from ``(name, value)`` string attributes.
#[pyfunction]
fn encode_resource<'py>(py: Python<'py>, attributes: Vec<(String, String)>) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &logs::resource(&attributes))
}

/// An ``ExportLogsServiceRequest`` of ``ResourceLogs`` bodies.
#[pyfunction]
fn export_request<'py>(py: Python<'py>, parts: Vec<Vec<u8>>) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 6).sum());
    for part in &parts {
        logs::request_part(part, &mut out);
    }
    PyBytes::new(py, &out)
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resource_logs, m)?)?;
    m.add_function(wrap_pyfunction!(encode_resource, m)?)?;
    m.add_function(wrap_pyfunction!(export_request, m)?)?;
    Ok(())
}

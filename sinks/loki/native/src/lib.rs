//! The Loki sink's renderer (`logdriver_sinks.loki._render`): a container's batch as one Loki push
//! stream, protobuf (`logproto.StreamAdapter`, the Loki driver's format) or JSON, in one
//! call from its column form (`LogBatch.columns()`); the sink joins the streams of one
//! push and compresses the body (`snappy` for protobuf).

pub mod push;

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::text::with_scratch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The batch as field 1 of a `PushRequest` (a framed `StreamAdapter`): `labels` is the
/// stream's label set as Loki writes it (`{a="b", ...}`), `metadata` the container's
/// structured metadata, given to every entry before the line's own; `message_line`: a
/// parsed line's message is the entry's line (the Loki driver's `output` stage).
#[pyfunction]
fn proto_stream<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    labels: &str,
    metadata: Vec<(String, String)>,
    message_line: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
    Ok(with_scratch(|out| {
        push::proto_stream(&lines, labels, &metadata, message_line, out);
        PyBytes::new(py, out)
    }))
}

/// The batch as one member of a JSON push's `streams` array; `labels` is the `stream`
/// object's JSON text.
#[pyfunction]
fn json_stream<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    labels: &[u8],
    metadata: Vec<(String, String)>,
    message_line: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
    Ok(with_scratch(|out| {
        push::json_stream(&lines, labels, &metadata, message_line, out);
        PyBytes::new(py, out)
    }))
}

/// `body` in snappy's block format, off the GIL.
#[pyfunction]
fn snappy<'py>(py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let compressed = py
        .detach(|| snap::raw::Encoder::new().compress_vec(body))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &compressed))
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(proto_stream, m)?)?;
    m.add_function(wrap_pyfunction!(json_stream, m)?)?;
    m.add_function(wrap_pyfunction!(snappy, m)?)?;
    Ok(())
}

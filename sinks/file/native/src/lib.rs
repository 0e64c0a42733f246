//! The file sink's renderer (`logdriver_sinks.file._render`): JSON lines or raw text for a whole
//! batch in one call, from its column form (`LogBatch.columns()`).

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::record::json_records;
use logdriver_lines::text::with_scratch;
use logdriver_lines::Lines;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// logdriver's JSON record per line (``logdriver_lines::record``), each + `suffix`, which
/// carries the per-container constant fields and the closing `}\n`.
pub fn json_lines(lines: &Lines<impl AsRef<[u8]>>, suffix: &[u8], out: &mut Vec<u8>) {
    json_records(lines, suffix, out);
}

pub fn text_lines(lines: &Lines<impl AsRef<[u8]>>, out: &mut Vec<u8>) {
    out.reserve(lines.arena.as_ref().len() + lines.records.len());
    for record in &lines.records {
        out.extend_from_slice(lines.line(record));
        out.push(b'\n');
    }
}

/// JSON lines: ``{"time","stream","message"[,"partial"]`` then ``suffix`` (``,...}\n``).
#[pyfunction(name = "json_lines")]
fn py_json_lines<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    suffix: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
    Ok(with_scratch(|out| {
        json_lines(&lines, suffix, out);
        PyBytes::new(py, out)
    }))
}

/// Each line followed by a newline.
#[pyfunction(name = "text_lines")]
fn py_text_lines<'py>(py: Python<'py>, columns: Columns<'py>) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
    Ok(with_scratch(|out| {
        text_lines(&lines, out);
        PyBytes::new(py, out)
    }))
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_json_lines, m)?)?;
    m.add_function(wrap_pyfunction!(py_text_lines, m)?)?;
    Ok(())
}

//! The Fluentd sink's renderer (`logdriver_sinks.fluentd._render`): forward-protocol entries for a
//! whole batch in one call, from its column form (`LogBatch.columns()`).

pub mod forward;

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::text::with_scratch;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Fluent forward entries (the PackedForward payload); see ``forward.rs``.
/// ``head``/``tail`` are packed key/value pairs placed before and after the line's own;
/// ``overridden`` flags the line's own fields that an extra in ``tail`` replaces.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn forward_entries<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    head: &[u8],
    head_pairs: usize,
    tail: &[u8],
    tail_pairs: usize,
    sub_second: bool,
    overridden: u8,
) -> PyResult<Bound<'py, PyBytes>> {
    let lines = lines_of(&columns)?;
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

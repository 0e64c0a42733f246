//! The kafka sink's renderer (`logdriver_sinks.kafka._render`): one message per line of a batch,
//! from its column form (`LogBatch.columns()`), so that the sink's Python loop does no
//! more per line than hand the message to librdkafka.

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::record::json_record;
use logdriver_lines::text::TimeText;
use logdriver_lines::Source;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// Milliseconds since the epoch, Kafka's record timestamp (floored, also before 1970).
pub fn timestamp_ms(time_nano: i64) -> i64 {
    time_nano.div_euclid(1_000_000)
}

/// `[(value, timestamp_ms, stream), ...]`: the JSON record (``raw`` false) or the line itself;
/// `stream` is 0 for stdout, 1 for stderr, 2 for any other (the plugin's own markers).
#[pyfunction]
fn messages<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    suffix: &[u8],
    raw: bool,
) -> PyResult<Bound<'py, PyList>> {
    let lines = lines_of(&columns)?;
    let mut time = TimeText::default();
    let mut out = Vec::with_capacity(256);
    let list = PyList::empty(py);
    for record in &lines.records {
        let value = if raw {
            PyBytes::new(py, lines.line(record))
        } else {
            out.clear();
            json_record(&lines, record, suffix, &mut time, &mut out);
            PyBytes::new(py, &out)
        };
        let stream: u8 = match record.source {
            Source::Stdout => 0,
            Source::Stderr => 1,
            Source::Other(_) => 2,
        };
        list.append(PyTuple::new(
            py,
            [
                value.into_any(),
                timestamp_ms(record.event_time())
                    .into_pyobject(py)?
                    .into_any(),
                stream.into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    Ok(list)
}

#[pymodule]
fn _render(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(messages, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_floor_to_milliseconds() {
        assert_eq!(timestamp_ms(1_999_999), 1);
        assert_eq!(timestamp_ms(-1), -1);
    }
}

//! The kafka sink's renderer (`sinks.kafka._render`): one message per line of a batch,
//! from its column form (`LogBatch.columns()`), so that the sink's Python loop does no
//! more per line than hand the message to librdkafka.

use logdriver_lines::python::{lines_of, Columns};
use logdriver_lines::text::{json_string, push_partial, TimeText};
use logdriver_lines::{Lines, Record};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// One record as the file sink writes it, without the newline:
/// `{"time":..,"stream":..,"message":..[,"partial":{..}]` + `suffix` (the constant fields and `}`).
pub fn json_value(
    lines: &Lines<impl AsRef<[u8]>>,
    record: &Record,
    suffix: &[u8],
    time: &mut TimeText,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"time\":\"");
    time.push(record.time_nano, out);
    out.extend_from_slice(b"Z\",\"stream\":");
    json_string(record.source.as_str().as_bytes(), out);
    out.extend_from_slice(b",\"message\":");
    json_string(lines.line(record), out);
    if let Some(p) = &record.partial {
        push_partial(p, out);
    }
    out.extend_from_slice(suffix);
}

/// Milliseconds since the epoch, Kafka's record timestamp (floored, also before 1970).
pub fn timestamp_ms(time_nano: i64) -> i64 {
    time_nano.div_euclid(1_000_000)
}

/// `[(value, timestamp_ms, stderr), ...]`: the JSON record (``raw`` false) or the line itself.
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
            json_value(&lines, record, suffix, &mut time, &mut out);
            PyBytes::new(py, &out)
        };
        let stderr = record.source.as_str() == "stderr";
        list.append(PyTuple::new(
            py,
            [
                value.into_any(),
                timestamp_ms(record.time_nano).into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, stderr).to_owned().into_any(),
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
    use logdriver_lines::Source;

    #[test]
    fn json_value_is_the_file_record_without_newline() {
        let mut lines = Lines::default();
        lines.push(
            Source::from_bytes(b"stderr").unwrap(),
            1_500_000_123,
            b"he said \"hi\"",
            None,
        );
        let mut out = Vec::new();
        json_value(
            &lines,
            &lines.records[0],
            b",\"container_id\":\"c\"}",
            &mut TimeText::default(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"time":"1970-01-01T00:00:01.500000123Z","stream":"stderr","message":"he said \"hi\"","container_id":"c"}"#
        );
    }

    #[test]
    fn timestamps_floor_to_milliseconds() {
        assert_eq!(timestamp_ms(1_999_999), 1);
        assert_eq!(timestamp_ms(-1), -1);
    }
}

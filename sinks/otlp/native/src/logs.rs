//! A container's batch as one OTLP `ResourceLogs` message (opentelemetry-proto, logs/v1):
//! its `Resource` and `InstrumentationScope` as given (constant per container), then one
//! `LogRecord` per record of the batch.
//!
//! Per record: `time_unix_nano` (a structured line's own time, else Docker's),
//! `observed_time_unix_nano` (Docker's), severity from a parsed level, the body (the line,
//! the joined event, or a parsed line's message; invalid UTF-8 becomes U+FFFD so the body
//! stays a valid protobuf string), `log.iostream`, the partial and multiline metadata,
//! trace and span ids, and a parsed line's other keys as attributes.

use std::borrow::Cow;

use logdriver_lines::text::{literal_text, text_of};
use logdriver_lines::{Lines, Record, Source};
use serde_json::Value;

use logdriver_lines::proto::{bytes, fixed64, key, uint, varint};

/// SeverityNumber of a level's text (the first of each range: TRACE 1 ... FATAL 21), 0 if unknown.
pub fn severity_number(level: &str) -> u64 {
    match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" | "dbg" => 5,
        "info" | "information" | "notice" => 9,
        "warn" | "warning" => 13,
        "error" | "err" => 17,
        "fatal" | "critical" | "crit" | "panic" | "emerg" | "emergency" | "alert" => 21,
        _ => 0,
    }
}

/// The `ResourceLogs` message body (without its own tag and length).
pub fn resource_logs(
    lines: &Lines<impl AsRef<[u8]>>,
    resource: &[u8],
    scope: &[u8],
    out: &mut Vec<u8>,
) {
    bytes(1, resource, out);
    let mut scope_logs = Vec::with_capacity(lines.arena.as_ref().len() + lines.records.len() * 80);
    bytes(1, scope, &mut scope_logs);
    let (mut record_buf, mut scratch) = (Vec::new(), Vec::new());
    for record in &lines.records {
        record_buf.clear();
        log_record(lines.line(record), record, &mut record_buf, &mut scratch);
        bytes(2, &record_buf, &mut scope_logs);
    }
    bytes(2, &scope_logs, out);
}

fn log_record(line: &[u8], record: &Record, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    let event = record.event.as_deref();
    let fields = event.and_then(|e| e.fields.as_ref());
    fixed64(1, record.event_time().max(0) as u64, out);
    if let Some(level) = fields.and_then(|f| f.level.as_ref()) {
        let text = text_of(line, level);
        let number = severity_number(&text);
        if number > 0 {
            uint(2, number, out);
        }
        bytes(3, text.as_bytes(), out);
    }
    let body: Cow<'_, str> = match fields {
        Some(f) => f
            .message
            .as_ref()
            .map_or(Cow::Borrowed(""), |m| text_of(line, m)),
        None => String::from_utf8_lossy(line),
    };
    scratch.clear();
    bytes(1, body.as_bytes(), scratch);
    bytes(5, scratch, out);
    let source = match &record.source {
        Source::Stdout => "stdout",
        Source::Stderr => "stderr",
        Source::Other(other) => other,
    };
    attribute(out, scratch, "log.iostream", |v| {
        bytes(1, source.as_bytes(), v)
    });
    if let Some(p) = &record.partial {
        attribute(out, scratch, "logdriver.partial.id", |v| {
            bytes(1, p.id.as_bytes(), v)
        });
        attribute(out, scratch, "logdriver.partial.ordinal", |v| {
            uint(3, i64::from(p.ordinal) as u64, v)
        });
        attribute(out, scratch, "logdriver.partial.last", |v| {
            uint(2, u64::from(p.last), v)
        });
    }
    if let Some(e) = event.filter(|e| e.joined()) {
        attribute(out, scratch, "logdriver.multiline.lines", |v| {
            uint(3, u64::from(e.lines), v)
        });
        if let Some(cut) = e.cut {
            attribute(out, scratch, "logdriver.multiline.cut", |v| {
                bytes(1, cut.as_str().as_bytes(), v)
            });
        }
    }
    if let Some(f) = fields {
        if let Some(service) = &f.service {
            let text = text_of(line, service);
            attribute(out, scratch, "service.name", |v| {
                bytes(1, text.as_bytes(), v)
            });
        }
        for (key_span, value_span) in &f.rest {
            let name = literal_text(key_span.of(line));
            attribute(out, scratch, &name, |v| any_value(value_span.of(line), v));
        }
        for (field, id, width, name) in [
            (9, &f.trace_id, 16, "trace_id"),
            (10, &f.span_id, 8, "span_id"),
        ] {
            let Some(id) = id else { continue };
            let text = text_of(line, id);
            match hex_id(&text, width) {
                Some(raw) => bytes(field, &raw, out),
                None => attribute(out, scratch, name, |v| bytes(1, text.as_bytes(), v)),
            }
        }
    }
    fixed64(11, record.time_nano.max(0) as u64, out);
}

/// A `KeyValue` (field 6 of LogRecord): `value` writes the AnyValue's own fields.
fn attribute(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    name: &str,
    value: impl FnOnce(&mut Vec<u8>),
) {
    scratch.clear();
    bytes(1, name.as_bytes(), scratch);
    let mut any = Vec::new();
    value(&mut any);
    bytes(2, &any, scratch);
    bytes(6, scratch, out);
}

/// A 32- or 16-character hex id as its 16 or 8 bytes; an all-zero id is invalid in OTLP.
fn hex_id(text: &str, width: usize) -> Option<Vec<u8>> {
    // A line's text: check it is ASCII hex before slicing, or a multi-byte character
    // would put a slice inside it (a panic, from one container's line).
    if text.len() != width * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let raw: Option<Vec<u8>> = (0..width)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect();
    raw.filter(|r| r.iter().any(|&b| b != 0))
}

/// The AnyValue fields of a JSON literal from a validated line.
fn any_value(literal: &[u8], out: &mut Vec<u8>) {
    match literal.first() {
        Some(b'"') => bytes(1, literal_text(literal).as_bytes(), out),
        Some(b't') => uint(2, 1, out),
        Some(b'f') => uint(2, 0, out),
        Some(b'n') | None => {}
        _ => match serde_json::from_slice::<Value>(literal) {
            Ok(value) => json_value(&value, out),
            Err(_) => bytes(
                1,
                &String::from_utf8_lossy(literal).into_owned().into_bytes(),
                out,
            ),
        },
    }
}

fn json_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => uint(2, u64::from(*b), out),
        Value::Number(n) => match n.as_i64() {
            Some(i) => uint(3, i as u64, out),
            None => {
                key(4, 1, out);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        },
        Value::String(s) => bytes(1, s.as_bytes(), out),
        Value::Array(items) => {
            let mut array = Vec::new();
            for item in items {
                let mut any = Vec::new();
                json_value(item, &mut any);
                bytes(1, &any, &mut array);
            }
            bytes(5, &array, out);
        }
        Value::Object(map) => {
            let mut list = Vec::new();
            for (k, v) in map {
                let mut pair = Vec::new();
                bytes(1, k.as_bytes(), &mut pair);
                let mut any = Vec::new();
                json_value(v, &mut any);
                bytes(2, &any, &mut pair);
                bytes(1, &pair, &mut list);
            }
            bytes(6, &list, out);
        }
    }
}

/// A `Resource` message from string attributes, in order.
pub fn resource(attributes: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    for (name, value) in attributes {
        scratch.clear();
        bytes(1, name.as_bytes(), &mut scratch);
        let mut any = Vec::new();
        bytes(1, value.as_bytes(), &mut any);
        bytes(2, &any, &mut scratch);
        bytes(1, &scratch, &mut out);
    }
    out
}

/// Prefix `body` (a `ResourceLogs`) as field 1 of `ExportLogsServiceRequest`.
pub fn request_part(body: &[u8], out: &mut Vec<u8>) {
    key(1, 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

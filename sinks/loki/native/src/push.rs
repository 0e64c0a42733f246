//! A container's batch as one Loki stream: `logproto.StreamAdapter` (grafana/loki
//! `pkg/push/push.proto`) or a JSON push's stream object.
//!
//! Labels are the container's (few values: Loki indexes them); what varies per line goes
//! in each entry's structured metadata, never in labels: the container's constant pairs
//! first (its id), then the line's `stream`, the partial and multiline facts, and a parsed
//! line's level, service, trace and span ids and, up to `MAX_FIELDS`, its other keys.
//! The line is the text as written (the joined event for a multiline one); invalid UTF-8
//! becomes U+FFFD, since both encodings carry strings. Entries go in time order: Loki
//! refuses a stream's entry older than one it took when out-of-order writes are off.

use std::borrow::Cow;

use logdriver_lines::proto::{bytes, key, message, uint, varint};
use logdriver_lines::text::{json_string, literal_text, push_digits, text_of};
use logdriver_lines::{Lines, Record, Source};

/// A parsed line's other keys sent as structured metadata, at most: Loki's default limit
/// on an entry's metadata is 64 KiB, and each key doubles what the line costs.
pub const MAX_FIELDS: usize = 32;

/// The records' indexes in time order (stable: equal times keep arrival order).
fn in_time_order(lines: &Lines<impl AsRef<[u8]>>) -> Vec<usize> {
    let sorted = lines
        .records
        .windows(2)
        .all(|w| w[0].event_time() <= w[1].event_time());
    let mut order: Vec<usize> = (0..lines.records.len()).collect();
    if !sorted {
        order.sort_by_key(|&i| lines.records[i].event_time());
    }
    order
}

/// The entry's line: as written, or with `message_line` a parsed line's message (a line
/// without one goes as written).
fn line_text<'a>(line: &'a [u8], record: &Record, message_line: bool) -> Cow<'a, [u8]> {
    let message = record
        .event
        .as_deref()
        .and_then(|e| e.fields.as_ref())
        .and_then(|f| f.message.as_ref())
        .filter(|_| message_line);
    if let Some(message) = message {
        return match text_of(line, message) {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        };
    }
    match std::str::from_utf8(line) {
        Ok(_) => Cow::Borrowed(line),
        Err(_) => Cow::Owned(String::from_utf8_lossy(line).into_owned().into_bytes()),
    }
}

/// A structured metadata name from a JSON key: Loki's label-name characters, others `_`.
fn metadata_name(raw: &str) -> Cow<'_, str> {
    let valid = |(i, c): (usize, char)| {
        c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
    };
    if !raw.is_empty() && raw.chars().enumerate().all(valid) {
        return Cow::Borrowed(raw);
    }
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c == '_' || c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    Cow::Owned(name)
}

/// Each (name, value) of the record's own structured metadata, in order.
fn line_metadata(line: &[u8], record: &Record, mut pair: impl FnMut(&str, &str)) {
    let source = match &record.source {
        Source::Stdout => "stdout",
        Source::Stderr => "stderr",
        Source::Other(other) => other,
    };
    pair("stream", source);
    if let Some(p) = &record.partial {
        pair("partial_id", &p.id);
        pair("partial_ordinal", &p.ordinal.to_string());
        pair("partial_last", if p.last { "true" } else { "false" });
    }
    let event = record.event.as_deref();
    if let Some(e) = event.filter(|e| e.joined()) {
        pair("multiline_lines", &e.lines.to_string());
        if let Some(cut) = e.cut {
            pair("multiline_cut", cut.as_str());
        }
    }
    let Some(fields) = event.and_then(|e| e.fields.as_ref()) else {
        return;
    };
    for (name, text) in [
        ("level", &fields.level),
        ("service_name", &fields.service),
        ("trace_id", &fields.trace_id),
        ("span_id", &fields.span_id),
    ] {
        if let Some(text) = text {
            pair(name, &text_of(line, text));
        }
    }
    for (key_span, value_span) in fields.rest.iter().take(MAX_FIELDS) {
        let name = literal_text(key_span.of(line));
        pair(&metadata_name(&name), &literal_text(value_span.of(line)));
    }
}

fn label_pair(name: &str, value: &str, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    message(3, scratch, out, |pair| {
        bytes(1, name.as_bytes(), pair);
        bytes(2, value.as_bytes(), pair);
    });
}

/// Field 1 of a `PushRequest`: this batch's `StreamAdapter`, framed.
pub fn proto_stream(
    lines: &Lines<impl AsRef<[u8]>>,
    labels: &str,
    metadata: &[(String, String)],
    message_line: bool,
    out: &mut Vec<u8>,
) {
    let mut stream = Vec::with_capacity(lines.arena.as_ref().len() + lines.records.len() * 64);
    bytes(1, labels.as_bytes(), &mut stream);
    let mut constant = Vec::new();
    let mut scratch = Vec::new();
    for (name, value) in metadata {
        label_pair(name, value, &mut scratch, &mut constant);
    }
    let mut entry = Vec::new();
    for &i in in_time_order(lines).iter() {
        let record = &lines.records[i];
        let line = lines.line(record);
        entry.clear();
        let time = record.event_time().max(0);
        message(1, &mut scratch, &mut entry, |timestamp| {
            uint(1, (time / 1_000_000_000) as u64, timestamp);
            let nanos = time % 1_000_000_000;
            if nanos != 0 {
                uint(2, nanos as u64, timestamp);
            }
        });
        bytes(2, &line_text(line, record, message_line), &mut entry);
        entry.extend_from_slice(&constant);
        line_metadata(line, record, |name, value| {
            label_pair(name, value, &mut scratch, &mut entry)
        });
        bytes(2, &entry, &mut stream);
    }
    key(1, 2, out);
    varint(stream.len() as u64, out);
    out.extend_from_slice(&stream);
}

/// `{"stream":LABELS,"values":[["<ns>","<line>",{metadata}],...]}`
pub fn json_stream(
    lines: &Lines<impl AsRef<[u8]>>,
    labels: &[u8],
    metadata: &[(String, String)],
    message_line: bool,
    out: &mut Vec<u8>,
) {
    out.reserve(lines.arena.as_ref().len() + lines.records.len() * 96);
    out.extend_from_slice(b"{\"stream\":");
    out.extend_from_slice(labels);
    out.extend_from_slice(b",\"values\":[");
    for (n, &i) in in_time_order(lines).iter().enumerate() {
        let record = &lines.records[i];
        let line = lines.line(record);
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        push_digits(record.event_time().max(0) as u64, 1, out);
        out.extend_from_slice(b"\",");
        json_string(&line_text(line, record, message_line), out);
        out.extend_from_slice(b",{");
        let mut first = true;
        let mut member = |name: &str, value: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            json_string(name.as_bytes(), out);
            out.push(b':');
            json_string(value.as_bytes(), out);
        };
        for (name, value) in metadata {
            member(name, value);
        }
        line_metadata(line, record, &mut member);
        out.extend_from_slice(b"}]");
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use logdriver_lines::Partial;

    fn lines() -> Lines {
        let mut lines = Lines::default();
        lines.push(Source::Stdout, 2_000_000_123, b"second", None);
        lines.push(Source::Stderr, 1_000_000_000, b"first \xff", None);
        let partial = Partial {
            id: "p1".into(),
            ordinal: 1,
            last: false,
        };
        lines.push(Source::Stdout, 3_000_000_000, b"third", Some(partial));
        lines
    }

    #[test]
    fn json_entries_go_in_time_order_with_their_metadata() {
        let mut out = Vec::new();
        json_stream(
            &lines(),
            b"{\"a\":\"b\"}",
            &[("container_id".into(), "c1".into())],
            false,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"stream":{"a":"b"},"values":["#,
                r#"["1000000000","first \ufffd",{"container_id":"c1","stream":"stderr"}],"#,
                r#"["2000000123","second",{"container_id":"c1","stream":"stdout"}],"#,
                r#"["3000000000","third",{"container_id":"c1","stream":"stdout","partial_id":"p1","#,
                r#""partial_ordinal":"1","partial_last":"false"}]]}"#
            )
            .replace("\\ufffd", "\u{fffd}")
        );
    }

    #[test]
    fn proto_stream_is_a_framed_stream_adapter() {
        let mut out = Vec::new();
        proto_stream(&lines(), "{a=\"b\"}", &[], false, &mut out);
        assert_eq!(out[0], 0x0a); // field 1, length-delimited
        assert!(out.windows(6).any(|w| w == b"{a=\"b\"}"[..6].as_ref()));
        let first = out.windows(5).position(|w| w == b"first").unwrap();
        let second = out.windows(6).position(|w| w == b"second").unwrap();
        assert!(first < second);
    }

    #[test]
    fn metadata_names_are_label_names() {
        assert_eq!(metadata_name("http.status"), "http_status");
        assert_eq!(metadata_name("2xx"), "_2xx");
        assert_eq!(metadata_name(""), "_");
        assert_eq!(metadata_name("ok_name1"), "ok_name1");
    }
}

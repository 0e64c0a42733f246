//! logdriver's JSON record: the one shape the file sink's lines, Kafka's message values and
//! the dead letters share. Fields, in order:
//!
//! `{"time":"<RFC 3339, ns>Z","stream":"stdout","message":"..."[,"partial":{"id","ordinal","last"}]`
//! `[,"multiline":{"lines":N[,"cut":"max-lines"]}][,"level":..,"trace_id":..,"span_id":..,"service":..,"fields":{..}]`
//!
//! A structured (JSON) line's `message` is its own message key's value (empty if it had
//! none), and `time` is its own time when it had one the stage could read.
//! then the caller's `suffix`: the fields constant for a container (or a dead letter's
//! reason) and the closing `}` (and `\n` for JSON lines). `message` is the line as a JSON
//! string: invalid UTF-8 becomes U+FFFD, control characters are escaped.

use crate::text::{json_string, push_partial, push_text, TimeText};
use crate::{Event, Lines, Record, Source};

/// One record followed by `suffix`.
pub fn json_record(
    lines: &Lines<impl AsRef<[u8]>>,
    record: &Record,
    suffix: &[u8],
    time: &mut TimeText,
    out: &mut Vec<u8>,
) {
    let event = record.event.as_deref();
    let fields = event.and_then(|e| e.fields.as_ref());
    out.extend_from_slice(b"{\"time\":\"");
    time.push(record.event_time(), out);
    match &record.source {
        Source::Stdout => out.extend_from_slice(b"Z\",\"stream\":\"stdout\",\"message\":"),
        Source::Stderr => out.extend_from_slice(b"Z\",\"stream\":\"stderr\",\"message\":"),
        Source::Other(other) => {
            out.extend_from_slice(b"Z\",\"stream\":");
            json_string(other.as_bytes(), out);
            out.extend_from_slice(b",\"message\":");
        }
    }
    match fields.and_then(|f| f.message.as_ref()) {
        Some(message) => push_text(lines.line(record), message, out),
        None if fields.is_some() => out.extend_from_slice(b"\"\""),
        None => json_string(lines.line(record), out),
    }
    if let Some(p) = &record.partial {
        push_partial(p, out);
    }
    if let Some(event) = event {
        push_event(event, lines.line(record), out);
    }
    out.extend_from_slice(suffix);
}

/// The event's members of the record: the multiline marker, then the parsed fields.
fn push_event(event: &Event, line: &[u8], out: &mut Vec<u8>) {
    if event.joined() {
        push_multiline(event, out);
    }
    let Some(f) = &event.fields else { return };
    for (key, value) in [
        (&b",\"level\":"[..], &f.level),
        (b",\"trace_id\":", &f.trace_id),
        (b",\"span_id\":", &f.span_id),
        (b",\"service\":", &f.service),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(key);
            push_text(line, value, out);
        }
    }
    out.extend_from_slice(b",\"fields\":{");
    for (i, (key, value)) in f.rest.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.of(line));
        out.push(b':');
        out.extend_from_slice(value.of(line));
    }
    out.push(b'}');
}

/// `,"multiline":{"lines":N[,"cut":"max-lines"]}`: a joined event's marker (JSON formats).
pub fn push_multiline(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"multiline\":{\"lines\":");
    crate::text::push_digits(u64::from(event.lines), 1, out);
    if let Some(cut) = event.cut {
        out.extend_from_slice(b",\"cut\":\"");
        out.extend_from_slice(cut.as_str().as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

/// Every record of `lines`, each followed by `suffix` (which ends with `}\n` for JSON lines).
pub fn json_records(lines: &Lines<impl AsRef<[u8]>>, suffix: &[u8], out: &mut Vec<u8>) {
    out.reserve(lines.arena.as_ref().len() + lines.records.len() * (90 + suffix.len()));
    let mut time = TimeText::default();
    for record in &lines.records {
        json_record(lines, record, suffix, &mut time, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Partial;

    #[test]
    fn the_record_has_its_fields_in_order() {
        let mut lines = Lines::default();
        lines.push(Source::Stderr, 1_500_000_123, b"he said \"hi\"", None);
        let partial = Partial {
            id: "p".into(),
            ordinal: 2,
            last: true,
        };
        lines.push(Source::Other("x".into()), 0, b"\xff", Some(partial));
        let mut out = Vec::new();
        json_records(&lines, b",\"container_id\":\"c\"}\n", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"time":"1970-01-01T00:00:01.500000123Z","stream":"stderr","message":"he said \"hi\"","container_id":"c"}"#,
                "\n",
                "{\"time\":\"1970-01-01T00:00:00.000000000Z\",\"stream\":\"x\",\"message\":\"\u{fffd}\",",
                r#""partial":{"id":"p","ordinal":2,"last":true},"container_id":"c"}"#,
                "\n"
            )
        );
    }
}

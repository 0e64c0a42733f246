//! Elasticsearch/OpenSearch bulk bodies: a `create` action and an ECS document per
//! line, in Rust because the Python encoder (in
//! tests/sinks/es_reference.py, kept as the reference, costs about 10 µs a line).
//!
//! Document ids are deterministic so a resent batch can never index a line twice:
//! XXH3-128 (a specified hash: stable across builds and versions) of the container
//! id, the time, the stream, a repeat count (identical lines at the same nanosecond)
//! and the line, as 22 URL-safe base64 characters.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use xxhash_rust::xxh3::Xxh3Default;

use logdriver_lines::text::{json_string, push_partial, TimeText};
use logdriver_lines::{Lines, Record};

use crate::ecs;

pub const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

pub fn document_id(container_id: &[u8], record: &Record, line: &[u8], repeat: u32) -> u128 {
    let mut hasher = Xxh3Default::new();
    hasher.update(container_id);
    hasher.update(&[0]);
    hasher.update(&record.time_nano.to_le_bytes());
    hasher.update(record.source.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&repeat.to_le_bytes());
    hasher.update(line);
    hasher.digest128()
}

/// The NDJSON body. `action_prefix(day)` gives `{"create":{"_index":..,"_id":"` for the
/// UTC day (days since the epoch) of a line's time, so dated index names follow the
/// log time; it is asked once per day change. `doc_suffix` closes each document
/// (`,<per-container fields>}\n`).
pub fn bulk_lines<E>(
    lines: &Lines<impl AsRef<[u8]>>,
    container_id: &[u8],
    mut action_prefix: impl FnMut(i64) -> Result<Vec<u8>, E>,
    doc_suffix: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), E> {
    out.reserve(lines.arena.as_ref().len() + lines.records.len() * (160 + doc_suffix.len()));
    let mut time = TimeText::default();
    let mut day = None;
    let mut prefix = Vec::new();
    let mut seen: HashMap<u128, u32> = HashMap::new();
    for record in &lines.records {
        let fields = record.event.as_ref().and_then(|e| e.fields.as_ref());
        let time_nano = record.event_time();
        let record_day = time_nano.div_euclid(NANOS_PER_DAY);
        if day != Some(record_day) {
            prefix = action_prefix(record_day)?;
            day = Some(record_day);
        }
        let line = lines.line(record);
        let first = document_id(container_id, record, line, 0);
        let repeat = seen.entry(first).or_insert(0);
        let id = if *repeat == 0 {
            first
        } else {
            document_id(container_id, record, line, *repeat)
        };
        *repeat += 1;
        out.extend_from_slice(&prefix);
        let mut text = [0u8; 22];
        URL_SAFE_NO_PAD
            .encode_slice(id.to_be_bytes(), &mut text)
            .expect("16 bytes are 22 characters");
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\"}}\n{\"@timestamp\":\"");
        time.push(time_nano, out);
        out.push(b'Z');
        match fields {
            None => {
                out.extend_from_slice(b"\",\"message\":");
                json_string(line, out);
            }
            Some(f) => {
                out.push(b'"');
                ecs::push_fields(f, line, out);
            }
        }
        out.extend_from_slice(b",\"stream\":");
        json_string(record.source.as_str().as_bytes(), out);
        if let Some(p) = &record.partial {
            push_partial(p, out);
        }
        if let Some(event) = record.event.as_deref().filter(|e| e.joined()) {
            logdriver_lines::record::push_multiline(event, out);
        }
        out.extend_from_slice(doc_suffix);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use logdriver_lines::Source;

    #[test]
    fn identical_lines_at_one_time_get_distinct_ids_and_days_switch_prefixes() {
        let mut lines = Lines::default();
        for _ in 0..2 {
            lines.push(Source::from_bytes(b"stdout").unwrap(), 5, b"same", None);
        }
        lines.push(
            Source::from_bytes(b"stdout").unwrap(),
            NANOS_PER_DAY + 5,
            b"next day",
            None,
        );
        let mut out = Vec::new();
        let mut asked = Vec::new();
        bulk_lines::<()>(
            &lines,
            b"c",
            |d| {
                asked.push(d);
                Ok(format!("{{\"create\":{{\"_index\":\"i{d}\",\"_id\":\"").into_bytes())
            },
            b"}\n",
            &mut out,
        )
        .unwrap();
        assert_eq!(asked, vec![0, 1]);
        let text = String::from_utf8(out).unwrap();
        let ids: Vec<&str> = text
            .lines()
            .step_by(2)
            .map(|l| &l[l.len() - 25..l.len() - 3])
            .collect();
        assert_eq!(ids.len(), 3);
        assert_ne!(ids[0], ids[1]);
        assert!(text.contains("\"_index\":\"i1\""));
    }
}

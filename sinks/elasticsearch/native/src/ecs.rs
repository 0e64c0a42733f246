//! What the processing stage adds to a document, in ECS terms.
//!
//! A structured line's well-known keys become `message`, `log.level`, `trace.id`,
//! `span.id` and `service.name`. Its other keys go under `fields`, flattened to one level
//! (nested keys joined with `_`, dots in keys made `_`) with every value a string (arrays
//! as their JSON text): whatever containers log, `fields.*` is always a string at one
//! level, so no line can change an index's mapping type or collide with an ECS field. A
//! name met twice (a duplicated key, or `a_b` beside `{"a":{"b":..}}`) keeps its first
//! value: Elasticsearch refuses a document with a field twice.
//!
//! Flattening repeats every ancestor's key in each leaf's name, so a line of deep objects
//! with long keys rendered ×244 its size. An object is flattened only to `FLATTEN_DEPTH`
//! levels and while its name is at most `MAX_PREFIX` bytes; past that it is kept whole as
//! its JSON text. A document is then at most about twice its line plus the names of the
//! (capped) number of keys: a constant times the line, whatever the line.

use logdriver_lines::text::{json_string, literal_text, push_text};
use logdriver_lines::Fields;
use std::collections::HashSet;

use serde_json::{Map, Value};

/// Levels of nested objects joined into one name (`fields.a_b_c`); deeper ones stay JSON text.
pub const FLATTEN_DEPTH: usize = 3;
/// The longest name an object is flattened under; a longer one keeps it as JSON text.
pub const MAX_PREFIX: usize = 256;

/// The members after `"@timestamp":"..."`, each led by a comma.
pub fn push_fields(f: &Fields, line: &[u8], out: &mut Vec<u8>) {
    for (key, value) in [
        (&b",\"message\":"[..], &f.message),
        (b",\"log.level\":", &f.level),
        (b",\"trace.id\":", &f.trace_id),
        (b",\"span.id\":", &f.span_id),
        (b",\"service.name\":", &f.service),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(key);
            push_text(line, value, out);
        }
    }
    if f.rest.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"fields\":{");
    let mut seen = HashSet::new();
    for (key, value) in &f.rest {
        let mut name = literal_text(key.of(line)).into_owned();
        let raw = value.of(line);
        match raw.first() {
            Some(b'{') => {
                // Nested members are joined into one level; only these are parsed again.
                if name.len() > MAX_PREFIX {
                    push_member(&name, raw, &mut seen, out);
                } else if let Ok(object) = serde_json::from_slice::<Map<String, Value>>(raw) {
                    flatten(&object, &mut name, 1, &mut seen, out);
                }
            }
            Some(b'n') => {} // null: nothing to index
            _ => push_member(&name, raw, &mut seen, out),
        }
    }
    out.push(b'}');
}

/// `"name":"value"`: a string literal as it came, anything else as its JSON text.
fn push_member(name: &str, raw: &[u8], seen: &mut HashSet<String>, out: &mut Vec<u8>) {
    let name = if name.is_empty() {
        "_".to_string()
    } else {
        name.replace('.', "_")
    };
    if seen.contains(&name) {
        return;
    }
    if !seen.is_empty() {
        out.push(b',');
    }
    json_string(name.as_bytes(), out);
    seen.insert(name);
    out.push(b':');
    match raw.first() {
        Some(b'"') => out.extend_from_slice(raw),
        Some(b'[' | b'{') => json_string(raw, out),
        _ => {
            out.push(b'"');
            out.extend_from_slice(raw);
            out.push(b'"');
        }
    }
}

fn flatten(
    object: &Map<String, Value>,
    prefix: &mut String,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut Vec<u8>,
) {
    for (key, value) in object {
        let before = prefix.len();
        prefix.push('_');
        prefix.push_str(if key.is_empty() { "_" } else { key });
        match value {
            Value::Object(inner) if depth < FLATTEN_DEPTH && prefix.len() <= MAX_PREFIX => {
                flatten(inner, prefix, depth + 1, seen, out)
            }
            Value::Object(_) => push_member(prefix, value.to_string().as_bytes(), seen, out),
            Value::Null => {}
            Value::String(text) => {
                let mut literal = Vec::with_capacity(text.len() + 2);
                json_string(text.as_bytes(), &mut literal);
                push_member(prefix, &literal, seen, out);
            }
            other => push_member(prefix, other.to_string().as_bytes(), seen, out),
        }
        prefix.truncate(before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logdriver_lines::{Span, Text};

    fn span(line: &str, part: &str) -> Span {
        let start = line.find(part).expect("in the line");
        Span {
            start: start as u32,
            len: part.len() as u32,
        }
    }

    #[test]
    fn other_keys_are_strings_at_one_level() {
        let line = r#"{"level":"warn","msg":"hi","user":{"id":42,"tags":["a"]},"ok":true,"gone":null,"a.b":1,"ok":7}"#;
        let member = |key: &str, value: &str| (span(line, key), span(line, value));
        let fields = Fields {
            level: Some(Text::Raw(span(line, r#""warn""#))),
            message: Some(Text::Raw(span(line, r#""hi""#))),
            rest: vec![
                member(r#""user""#, r#"{"id":42,"tags":["a"]}"#),
                member(r#""ok""#, "true"),
                member(r#""gone""#, "null"),
                member(r#""a.b""#, "1"),
                member(r#""ok""#, "7"),
            ],
            ..Fields::default()
        };
        let mut out = Vec::new();
        push_fields(&fields, line.as_bytes(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#","message":"hi","log.level":"warn","fields":{"user_id":"42","user_tags":"[\"a\"]","ok":"true","a_b":"1"}"#
        );
    }

    #[test]
    fn deep_objects_with_long_keys_render_within_a_constant_of_their_line() {
        // The audit's shape: 16 levels of 3,900-byte keys, many leaves at the bottom.
        let key = "k".repeat(3_900);
        let mut inner = (0..200)
            .map(|n| format!("\"leaf{n}\":{n}"))
            .collect::<Vec<_>>()
            .join(",");
        for _ in 0..15 {
            inner = format!("\"{key}\":{{{inner}}}");
        }
        let line = format!("{{\"{key}\":{{{inner}}}}}");
        let value_at = line.find(":{").unwrap() + 1;
        let fields = Fields {
            rest: vec![(
                Span {
                    start: 1,
                    len: (key.len() + 2) as u32,
                },
                Span {
                    start: value_at as u32,
                    len: (line.len() - 1 - value_at) as u32,
                },
            )],
            ..Fields::default()
        };
        let mut out = Vec::new();
        push_fields(&fields, line.as_bytes(), &mut out);
        assert!(
            out.len() <= 2 * line.len() + 64 * 1024,
            "{} bytes from a {}-byte line",
            out.len(),
            line.len()
        );
        let rendered: serde_json::Value =
            serde_json::from_slice(&out[",\"fields\":".len()..]).unwrap();
        assert_eq!(rendered.as_object().unwrap().len(), 1); // one name, its object kept as text
    }

    #[test]
    fn shallow_objects_still_flatten() {
        let line = r#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#;
        let fields = Fields {
            rest: vec![(
                span(line, r#""a""#),
                span(line, r#"{"b":{"c":{"d":{"e":1}}}}"#),
            )],
            ..Fields::default()
        };
        let mut out = Vec::new();
        push_fields(&fields, line.as_bytes(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#","fields":{"a_b_c_d":"{\"e\":1}"}"#
        );
    }
}

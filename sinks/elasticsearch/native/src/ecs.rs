//! What the processing stage adds to a document, in ECS terms.
//!
//! A structured line's well-known keys become `message`, `log.level`, `trace.id`,
//! `span.id` and `service.name`. Its other keys go under `fields`, flattened to one level
//! (nested keys joined with `_`, dots in keys made `_`) with every value a string (arrays
//! as their JSON text): whatever containers log, `fields.*` is always a string at one
//! level, so no line can change an index's mapping type or collide with an ECS field. A
//! name met twice (a duplicated key, or `a_b` beside `{"a":{"b":..}}`) keeps its first
//! value: Elasticsearch refuses a document with a field twice.

use logdriver_lines::text::{json_string, literal_text, push_text};
use logdriver_lines::Fields;
use std::collections::HashSet;

use serde_json::{Map, Value};

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
                if let Ok(object) = serde_json::from_slice::<Map<String, Value>>(raw) {
                    flatten(&object, &mut name, &mut seen, out);
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
        Some(b'[') => json_string(raw, out),
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
    seen: &mut HashSet<String>,
    out: &mut Vec<u8>,
) {
    for (key, value) in object {
        let before = prefix.len();
        prefix.push('_');
        prefix.push_str(if key.is_empty() { "_" } else { key });
        match value {
            Value::Object(inner) => flatten(inner, prefix, seen, out),
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
}

//! What the processing stage adds to a document, in ECS terms.
//!
//! A structured line's well-known keys become `message`, `log.level`, `trace.id`,
//! `span.id` and `service.name`. Its other keys go under `fields`, flattened to one level
//! (nested keys joined with `_`, dots in keys made `_`) with every value a string (arrays
//! as their JSON text): whatever containers log, `fields.*` is always a string at one
//! level, so no line can change an index's mapping type or collide with an ECS field.

use logdriver_lines::text::{json_string, push_digits};
use logdriver_lines::{Event, Fields};
use serde_json::{Map, Value};

/// The members after `"@timestamp":"..."`, each led by a comma.
pub fn push_fields(f: &Fields, out: &mut Vec<u8>) {
    for (key, value) in [
        (&b",\"message\":"[..], &f.message),
        (b",\"log.level\":", &f.level),
        (b",\"trace.id\":", &f.trace_id),
        (b",\"span.id\":", &f.span_id),
        (b",\"service.name\":", &f.service),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(key);
            json_string(value.as_bytes(), out);
        }
    }
    let Ok(rest) = serde_json::from_str::<Map<String, Value>>(&f.rest) else {
        return; // the stage wrote it: always an object
    };
    if rest.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"fields\":{");
    let mut first = true;
    flatten(&rest, &mut String::new(), &mut first, out);
    out.push(b'}');
}

fn flatten(object: &Map<String, Value>, prefix: &mut String, first: &mut bool, out: &mut Vec<u8>) {
    for (key, value) in object {
        let before = prefix.len();
        if !prefix.is_empty() {
            prefix.push('_');
        }
        prefix.push_str(if key.is_empty() { "_" } else { key });
        match value {
            Value::Object(inner) => flatten(inner, prefix, first, out),
            Value::Null => {}
            _ => {
                if !*first {
                    out.push(b',');
                }
                *first = false;
                json_string(prefix.replace('.', "_").as_bytes(), out);
                out.push(b':');
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                json_string(text.as_bytes(), out);
            }
        }
        prefix.truncate(before);
    }
}

/// `,"multiline":{"lines":N[,"cut":"max-lines"]}`
pub fn push_multiline(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"multiline\":{\"lines\":");
    push_digits(u64::from(event.lines), 1, out);
    if let Some(cut) = event.cut {
        out.extend_from_slice(b",\"cut\":\"");
        out.extend_from_slice(cut.as_str().as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_keys_are_strings_at_one_level() {
        let fields = Fields {
            level: Some("warn".into()),
            message: Some("hi".into()),
            rest: r#"{"user":{"id":42,"tags":["a"]},"ok":true,"gone":null,"a.b":1}"#.into(),
            ..Fields::default()
        };
        let mut out = Vec::new();
        push_fields(&fields, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#","message":"hi","log.level":"warn","fields":{"user_id":"42","user_tags":"[\"a\"]","ok":"true","a_b":"1"}"#
        );
    }
}

//! `parse=json`: a line that is a JSON object becomes fields.
//!
//! Well-known keys (level, message, time, trace and span ids, service) are taken out so each
//! sink can map them to its own conventions; the other keys stay as one compact object that
//! sinks put under one prefix. Caps on size, depth and keys bound the work a line can cost;
//! a line over them, or not a JSON object, is shipped unchanged and counted.

use logdriver_lines::Fields;
use serde_json::{Map, Value};

/// What a line's parse may cost; over any, the line ships as it is.
#[derive(Debug, Clone, Copy)]
pub struct JsonCaps {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_keys: usize,
}

pub const CAPS: JsonCaps = JsonCaps {
    max_bytes: 64 << 10,
    max_depth: 16,
    max_keys: 256,
};

pub enum Parsed {
    Fields(Fields),
    NotAnObject,
    OverLimit,
}

/// Keys read for each well-known field, first present wins (loggers name them differently:
/// logrus, zap, pino, bunyan, structlog, Serilog's compact format, ECS loggers).
const LEVEL: &[&str] = &["level", "severity", "lvl", "log.level", "levelname", "@l"];
const MESSAGE: &[&str] = &["msg", "message", "@m"];
const TIME: &[&str] = &["time", "timestamp", "ts", "@timestamp", "@t"];
const TRACE_ID: &[&str] = &["trace_id", "traceId", "trace.id", "traceid"];
const SPAN_ID: &[&str] = &["span_id", "spanId", "span.id", "spanid"];
const SERVICE: &[&str] = &["service", "service.name", "service_name"];

/// Whether `line` looks like a JSON object at all (cheap: its first and last non-space bytes).
pub fn braced(line: &[u8]) -> bool {
    let trimmed = line.trim_ascii();
    trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}')
}

/// Whether `line` is one valid JSON object (multiline never merges one into an event).
pub fn is_object(line: &[u8]) -> bool {
    braced(line) && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

pub fn parse(line: &[u8], caps: JsonCaps) -> Parsed {
    if !braced(line) {
        return Parsed::NotAnObject;
    }
    if line.len() > caps.max_bytes {
        return Parsed::OverLimit;
    }
    // serde_json refuses nesting deeper than 128 with an error, never a stack overflow.
    let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(line) else {
        return Parsed::NotAnObject;
    };
    let mut keys = 0;
    if !within(&object, 1, caps, &mut keys) {
        return Parsed::OverLimit;
    }
    let level = take(&mut object, LEVEL, level_text);
    let message = take(&mut object, MESSAGE, text);
    let time_nano = take(&mut object, TIME, time_of);
    let trace_id = take(&mut object, TRACE_ID, text);
    let span_id = take(&mut object, SPAN_ID, text);
    let service = take(&mut object, SERVICE, text);
    Parsed::Fields(Fields {
        level,
        message,
        trace_id,
        span_id,
        service,
        time_nano,
        rest: serde_json::to_string(&object).expect("a JSON object serialises"),
    })
}

fn within(object: &Map<String, Value>, depth: usize, caps: JsonCaps, keys: &mut usize) -> bool {
    if depth > caps.max_depth {
        return false;
    }
    *keys += object.len();
    if *keys > caps.max_keys {
        return false;
    }
    object
        .values()
        .all(|value| value_within(value, depth, caps, keys))
}

fn value_within(value: &Value, depth: usize, caps: JsonCaps, keys: &mut usize) -> bool {
    match value {
        Value::Object(inner) => within(inner, depth + 1, caps, keys),
        Value::Array(items) => {
            depth < caps.max_depth && items.iter().all(|v| value_within(v, depth + 1, caps, keys))
        }
        _ => true,
    }
}

/// The first of `names` whose value `read` accepts, removed from the object.
fn take<T>(
    object: &mut Map<String, Value>,
    names: &[&str],
    read: fn(&Value) -> Option<T>,
) -> Option<T> {
    for name in names {
        if let Some(found) = object.get(*name).and_then(read) {
            object.shift_remove(*name);
            return Some(found);
        }
    }
    None
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// pino and bunyan write numeric levels.
fn level_text(value: &Value) -> Option<String> {
    if let Some(n) = value.as_i64() {
        let name = match n {
            10 => "trace",
            20 => "debug",
            30 => "info",
            40 => "warn",
            50 => "error",
            60 => "fatal",
            _ => return Some(n.to_string()),
        };
        return Some(name.to_string());
    }
    value.as_str().map(str::to_string)
}

fn time_of(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => rfc3339(s.as_bytes()),
        Value::Number(n) => epoch(n),
        _ => None,
    }
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.
fn epoch(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        let scale: i64 = match i.unsigned_abs() {
            0..100_000_000_000 => 1_000_000_000,
            100_000_000_000..100_000_000_000_000 => 1_000_000,
            100_000_000_000_000..100_000_000_000_000_000 => 1_000,
            _ => 1,
        };
        return i.checked_mul(scale);
    }
    let f = n.as_f64()?;
    let scale = match f.abs() {
        a if a < 1e11 => 1e9,
        a if a < 1e14 => 1e6,
        a if a < 1e17 => 1e3,
        _ => 1.0,
    };
    let nanos = (f * scale).round();
    (nanos.abs() < 9.2e18).then_some(nanos as i64)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction](Z|±HH:MM)`, as RFC 3339 and most loggers write it.
pub fn rfc3339(text: &[u8]) -> Option<i64> {
    if text.len() < 20
        || text.len() > 40
        || text[4] != b'-'
        || text[7] != b'-'
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    if text[10] != b'T' && text[10] != b't' && text[10] != b' ' {
        return None;
    }
    let (year, month, day) = (
        digits(&text[0..4])?,
        digits(&text[5..7])?,
        digits(&text[8..10])?,
    );
    let (hour, minute, second) = (
        digits(&text[11..13])?,
        digits(&text[14..16])?,
        digits(&text[17..19])?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0;
    if rest.first() == Some(&b'.') {
        let count = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        let kept = &rest[1..1 + count.min(9)];
        nanos = digits(kept)? * 10_i64.pow(9 - kept.len() as u32);
        rest = &rest[1 + count..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = digits(&[*h1, *h2])? * 60 + digits(&[*m1, *m2])?;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Fields {
        match parse(line.as_bytes(), CAPS) {
            Parsed::Fields(f) => f,
            _ => panic!("{line} did not parse"),
        }
    }

    #[test]
    fn well_known_keys_are_taken_out_and_the_rest_kept_in_order() {
        let f = fields(
            r#"{"ts":1700000000.5,"level":30,"msg":"hi","trace_id":"abc","z":1,"a":{"b":[1,2]},"message":"second"}"#,
        );
        assert_eq!(f.level.as_deref(), Some("info"));
        assert_eq!(f.message.as_deref(), Some("hi"));
        assert_eq!(f.trace_id.as_deref(), Some("abc"));
        assert_eq!(f.time_nano, Some(1_700_000_000_500_000_000));
        assert_eq!(f.rest, r#"{"z":1,"a":{"b":[1,2]},"message":"second"}"#);
    }

    #[test]
    fn times_in_the_forms_loggers_write() {
        assert_eq!(rfc3339(b"1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(rfc3339(b"1970-01-01 01:00:00.25+01:00"), Some(250_000_000));
        assert_eq!(
            rfc3339(b"2024-02-29T12:00:00.123456789123Z"),
            Some(1_709_208_000_123_456_789)
        );
        assert_eq!(rfc3339(b"2024-13-01T00:00:00Z"), None);
        assert_eq!(
            fields(r#"{"time":1700000000123}"#).time_nano,
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(
            fields(r#"{"time":"yesterday"}"#).rest,
            r#"{"time":"yesterday"}"#
        );
    }

    #[test]
    fn caps_and_non_objects() {
        let deep = "[".repeat(20) + &"]".repeat(20);
        assert!(matches!(
            parse(format!("{{\"a\":{deep}}}").as_bytes(), CAPS),
            Parsed::OverLimit
        ));
        let wide: Vec<String> = (0..300).map(|i| format!("\"k{i}\":0")).collect();
        assert!(matches!(
            parse(format!("{{{}}}", wide.join(",")).as_bytes(), CAPS),
            Parsed::OverLimit
        ));
        let very_deep = "{\"a\":".repeat(200) + &"}".repeat(200);
        assert!(matches!(
            parse(very_deep.as_bytes(), CAPS),
            Parsed::OverLimit | Parsed::NotAnObject
        ));
        assert!(matches!(parse(b"{not json}", CAPS), Parsed::NotAnObject));
        assert!(matches!(parse(b"[1]", CAPS), Parsed::NotAnObject));
        assert!(matches!(
            parse(b"{\"a\":\"\xff\"}", CAPS),
            Parsed::NotAnObject
        ));
    }
}

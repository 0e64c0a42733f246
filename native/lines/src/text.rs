//! Text helpers for renderers: JSON strings, RFC 3339 times, partial metadata.

use std::borrow::Cow;

use crate::{Partial, Text, LEVEL_NAMES};

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 UTC with nine fraction digits, e.g. `2026-11-28T14:02:36.000000001Z`.
pub fn rfc3339_nanos(time_nano: i64, out: &mut Vec<u8>) {
    rfc3339_parts(
        time_nano.div_euclid(1_000_000_000),
        time_nano.rem_euclid(1_000_000_000),
        out,
    );
}

/// The same from whole seconds and nanoseconds (no `seconds * 1e9`: it overflows near i64's ends).
fn rfc3339_parts(seconds: i64, nanos: i64, out: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let secs_of_day = seconds.rem_euclid(86_400);
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        year,
        month,
        day,
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        nanos
    );
    out.extend_from_slice(text.as_bytes());
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 0: copy as is; b'u': \u00XX; otherwise the character after the backslash.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes in `word` may need escaping (< 0x20, `"` or `\\`).
/// May say yes wrongly (the bytes are then checked one by one), never no wrongly.
#[inline]
fn may_need_escape(word: u64) -> bool {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote =
        (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'"')));
    let backslash =
        (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) & HIGHS != 0
}

fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut run = 0;
    let mut i = 0;
    while i < raw.len() {
        // Skip 8 clean bytes at a time: most log text needs no escaping at all.
        if i + 8 <= raw.len() {
            let word = u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
            if !may_need_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = raw[i];
        let code = ESCAPE[usize::from(b)];
        i += 1;
        if code == 0 {
            continue;
        }
        let i = i - 1;
        out.extend_from_slice(&raw[run..i]);
        if code == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.push(b'\\');
            out.push(code);
        }
        run = i + 1;
    }
    out.extend_from_slice(&raw[run..]);
}

/// Reused across calls: a fresh megabyte-sized buffer per batch costs page faults.
pub fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local!(static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        let result = f(&mut buf);
        if buf.capacity() > 64 << 20 {
            *buf = Vec::new(); // do not keep a huge buffer after one huge batch
        }
        result
    })
}

/// A JSON string (with quotes) of `bytes`, invalid UTF-8 replaced by U+FFFD.
pub fn json_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    match std::str::from_utf8(bytes) {
        Ok(_) => escape_into(bytes, out),
        Err(_) => escape_into(String::from_utf8_lossy(bytes).as_bytes(), out),
    }
    out.push(b'"');
}

pub fn push_digits(mut value: u64, width: usize, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while value > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// `,"partial":{"id":..,"ordinal":..,"last":..}`
pub fn push_partial(p: &Partial, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"partial\":{\"id\":");
    json_string(p.id.as_bytes(), out);
    out.extend_from_slice(b",\"ordinal\":");
    if p.ordinal < 0 {
        out.push(b'-');
    }
    push_digits(u64::from(p.ordinal.unsigned_abs()), 1, out);
    out.extend_from_slice(if p.last {
        b",\"last\":true}"
    } else {
        b",\"last\":false}"
    });
}

/// RFC 3339 UTC time with nanoseconds, without the trailing `Z`; the date and
/// clock part is formatted once per second of log time.
#[derive(Default)]
pub struct TimeText {
    second: Option<i64>,
    text: Vec<u8>,
}

impl TimeText {
    pub fn push(&mut self, time_nano: i64, out: &mut Vec<u8>) {
        let second = time_nano.div_euclid(1_000_000_000);
        if self.second != Some(second) {
            self.text.clear();
            rfc3339_parts(second, 0, &mut self.text);
            self.text.truncate(self.text.len() - 11); // keep "YYYY-MM-DDTHH:MM:SS"
            self.second = Some(second);
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        push_digits(time_nano.rem_euclid(1_000_000_000) as u64, 9, out);
    }
}

/// A parsed line's value as a JSON string: a string literal as it came (it is valid
/// JSON), a number literal quoted, a level name escaped.
pub fn push_text(line: &[u8], text: &Text, out: &mut Vec<u8>) {
    match text {
        Text::Raw(span) => {
            let literal = span.of(line);
            if literal.first() == Some(&b'"') {
                out.extend_from_slice(literal);
            } else {
                out.push(b'"');
                out.extend_from_slice(literal);
                out.push(b'"');
            }
        }
        Text::Level(index) => json_string(LEVEL_NAMES[usize::from(*index) % 6].as_bytes(), out),
    }
}

/// A parsed line's value as text (a string literal unescaped).
pub fn text_of<'a>(line: &'a [u8], text: &Text) -> Cow<'a, str> {
    match text {
        Text::Raw(span) => literal_text(span.of(line)),
        Text::Level(index) => Cow::Borrowed(LEVEL_NAMES[usize::from(*index) % 6]),
    }
}

/// The text of a JSON literal from a validated line: a string's content unescaped, any
/// other literal as it is. Anything not UTF-8 becomes U+FFFD (validated lines have none).
pub fn literal_text(literal: &[u8]) -> Cow<'_, str> {
    let [b'"', inner @ .., b'"'] = literal else {
        return String::from_utf8_lossy(literal);
    };
    if !inner.contains(&b'\\') {
        return String::from_utf8_lossy(inner);
    }
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] != b'\\' || i + 1 >= inner.len() {
            out.push(inner[i]);
            i += 1;
            continue;
        }
        let simple = match inner[i + 1] {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'u' => None,
            other => Some(other), // \" \\ \/
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let unit = |at: usize| {
            inner
                .get(at..at + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        let (code, used) = match unit(i + 2) {
            Some(high @ 0xD800..=0xDBFF) if inner.get(i + 6..i + 8) == Some(b"\\u") => {
                match unit(i + 8) {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
                    }
                    _ => (0xFFFD, 6),
                }
            }
            Some(code) => (code, 6),
            None => (0xFFFD, 2),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(
            char::from_u32(code)
                .unwrap_or('\u{fffd}')
                .encode_utf8(&mut buf)
                .as_bytes(),
        );
        i += used;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_literals_unescape() {
        assert_eq!(literal_text(br#""a\"b\u00e9\ud83d\ude00\n""#), "a\"bé😀\n");
        assert_eq!(literal_text(b"42"), "42");
        assert_eq!(literal_text(br#""plain""#), "plain");
    }

    #[test]
    fn formats_the_ends_of_i64() {
        let mut out = Vec::new();
        TimeText::default().push(i64::MIN, &mut out);
        assert_eq!(out, b"1677-09-21T00:12:43.145224192");
        out.clear();
        TimeText::default().push(i64::MAX, &mut out);
        assert_eq!(out, b"2262-04-11T23:47:16.854775807");
    }

    #[test]
    fn formats_times() {
        let mut out = Vec::new();
        rfc3339_nanos(1_764_338_556_000_000_001, &mut out);
        assert_eq!(out, b"2025-11-28T14:02:36.000000001Z");
        out.clear();
        rfc3339_nanos(0, &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn word_scan_never_misses() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let needs = ESCAPE[usize::from(b)] != 0;
                assert!(
                    !needs || may_need_escape(u64::from_le_bytes(word)),
                    "byte {b:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn escapes_like_orjson() {
        let mut out = Vec::new();
        json_string(b"a\"b\\c\n\x01\xff", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u0001\u{fffd}\""
        );
    }
}

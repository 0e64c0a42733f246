//! `parse=json`: a line that is a JSON object becomes fields.
//!
//! Well-known keys (level, message, time, trace and span ids, service) are found so each
//! sink can map them to its own conventions; the other members stay as they are, and sinks
//! put them under one prefix. One pass validates the line (RFC 8259), counts its depth and
//! keys against the caps, and finds its top-level members; the result is places in the
//! line, so nothing is copied or re-escaped. Caps on size, depth
//! and keys bound the work; a line over them, or not a JSON object, ships unchanged.

use logdriver_lines::text::literal_text;
use logdriver_lines::{Fields, Span, Text, LEVEL_NAMES};

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
pub const ROLES: [&[&str]; 6] = [LEVEL, MESSAGE, TIME, TRACE_ID, SPAN_ID, SERVICE];
pub const ROLE_NAMES: [&str; 6] = ["level", "message", "time", "trace id", "span id", "service"];
type Reader = fn(&[u8], Span) -> Option<Text>;
const READERS: [Reader; 6] = [level_text, scalar, time_text, scalar, scalar, scalar];

/// Whether `line` looks like a JSON object at all (cheap: its first and last non-space bytes).
pub fn braced(line: &[u8]) -> bool {
    let trimmed = line.trim_ascii();
    trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}')
}

/// Whether `line` is one valid JSON object (multiline never merges one into an event).
pub fn is_object(line: &[u8]) -> bool {
    braced(line)
        && std::str::from_utf8(line).is_ok()
        && !matches!(scan(line, UNCAPPED), Err(Invalid))
}

pub fn parse(line: &[u8], caps: JsonCaps) -> Parsed {
    if !braced(line) {
        return Parsed::NotAnObject;
    }
    if line.len() > caps.max_bytes || line.len() > u32::MAX as usize {
        return Parsed::OverLimit;
    }
    // Raw literals are copied into JSON output: the line must be UTF-8 and valid JSON.
    if std::str::from_utf8(line).is_err() {
        return Parsed::NotAnObject;
    }
    let mut members = match scan(line, caps) {
        Ok(members) => members,
        Err(Invalid) => return Parsed::NotAnObject,
        Err(OverLimit) => return Parsed::OverLimit,
    };
    // One pass over the keys: each well-known role's best-named key (if its value is not a
    // string or number, it stays among the other members).
    let mut best: [Option<(usize, usize)>; 6] = [None; 6];
    for (index, (key, _)) in members.iter().enumerate() {
        let key = key.of(line);
        let name = &key[1..key.len() - 1];
        for (role, names) in ROLES.iter().enumerate() {
            if let Some(rank) = names.iter().position(|n| n.as_bytes() == name) {
                if best[role].is_none_or(|(r, _)| rank < r) {
                    best[role] = Some((rank, index));
                }
            }
        }
    }
    let mut found: [Option<Text>; 6] = [None; 6];
    let mut taken = [usize::MAX; 6];
    for (role, choice) in best.iter().enumerate() {
        if let Some((_, index)) = *choice {
            found[role] = READERS[role](line, members[index].1);
            if found[role].is_some() {
                taken[role] = index;
            }
        }
    }
    if taken.iter().any(|&t| t != usize::MAX) {
        let mut index = 0;
        members.retain(|_| {
            index += 1;
            !taken.contains(&(index - 1))
        });
    }
    let [level, message, time, trace_id, span_id, service] = found;
    let time_nano = match time {
        Some(Text::Raw(span)) => time_of(span.of(line)),
        _ => None,
    };
    Parsed::Fields(Fields {
        level,
        message,
        trace_id,
        span_id,
        service,
        time_nano,
        rest: members,
    })
}

fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        len: (end - start) as u32,
    }
}

/// Why a line is not read: not one valid JSON object, or over a cap.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Invalid,
    OverLimit,
}
use Refused::{Invalid, OverLimit};

/// Caps that only JSON's own rules limit (multiline's "is it an object" question); the
/// depth still bounds the scanner's recursion.
const UNCAPPED: JsonCaps = JsonCaps {
    max_bytes: usize::MAX,
    max_depth: 128,
    max_keys: usize::MAX,
};

/// Validate `line` as one JSON object (RFC 8259; its UTF-8 is checked by the caller) in one
/// pass, returning its top-level members: (key literal, value literal). Depth and keys are
/// counted on the way; the recursion is bounded by the depth cap.
fn scan(line: &[u8], caps: JsonCaps) -> Result<Vec<(Span, Span)>, Refused> {
    let mut scanner = Scanner {
        b: line,
        at: 0,
        keys: 0,
        caps,
    };
    scanner.space();
    let members = scanner.object(1, true)?;
    scanner.space();
    if scanner.at != line.len() {
        return Err(Invalid);
    }
    Ok(members)
}

struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
    keys: usize,
    caps: JsonCaps,
}

impl Scanner<'_> {
    fn peek(&self) -> Result<u8, Refused> {
        self.b.get(self.at).copied().ok_or(Invalid)
    }

    fn space(&mut self) {
        while self.at < self.b.len() && matches!(self.b[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Refused> {
        if self.peek()? != byte {
            return Err(Invalid);
        }
        self.at += 1;
        Ok(())
    }

    /// An object at `depth`; its members are kept only for the top level.
    fn object(&mut self, depth: usize, top: bool) -> Result<Vec<(Span, Span)>, Refused> {
        if depth > self.caps.max_depth {
            return Err(OverLimit);
        }
        self.expect(b'{')?;
        let mut members = Vec::new();
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(members);
        }
        loop {
            self.space();
            let key_start = self.at;
            self.string()?;
            let key = span(key_start, self.at);
            self.keys += 1;
            if self.keys > self.caps.max_keys {
                return Err(OverLimit);
            }
            self.space();
            self.expect(b':')?;
            self.space();
            let value_start = self.at;
            self.value(depth)?;
            if top {
                members.push((key, span(value_start, self.at)));
            }
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(members);
                }
                _ => return Err(Invalid),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Refused> {
        if depth > self.caps.max_depth {
            return Err(OverLimit);
        }
        self.expect(b'[')?;
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            self.value(depth)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// A value inside a container at `depth`.
    fn value(&mut self, depth: usize) -> Result<(), Refused> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1, false).map(|_| ()),
            b'[' => self.array(depth + 1),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Invalid),
        }
    }

    fn word(&mut self, word: &[u8]) -> Result<(), Refused> {
        if !self.b[self.at..].starts_with(word) {
            return Err(Invalid);
        }
        self.at += word.len();
        Ok(())
    }

    fn digits(&mut self) -> Result<(), Refused> {
        let start = self.at;
        while self.at < self.b.len() && self.b[self.at].is_ascii_digit() {
            self.at += 1;
        }
        if self.at == start {
            return Err(Invalid);
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), Refused> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        if self.peek()? == b'0' {
            self.at += 1;
        } else {
            self.digits()?;
        }
        if self.b.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits()?;
        }
        if matches!(self.b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn string(&mut self) -> Result<(), Refused> {
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.b.get(self.at + 1..self.at + 5).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            self.at += 5;
                        }
                        _ => return Err(Invalid),
                    }
                }
                0..=0x1f => return Err(Invalid),
                _ => self.at += 1,
            }
        }
    }
}

/// A string or number literal.
fn scalar(line: &[u8], value: Span) -> Option<Text> {
    match value.of(line).first()? {
        b'"' | b'-' | b'0'..=b'9' => Some(Text::Raw(value)),
        _ => None,
    }
}

/// pino and bunyan write numeric levels: 10 trace ... 60 fatal.
fn level_text(line: &[u8], value: Span) -> Option<Text> {
    let literal = value.of(line);
    let named = match literal {
        b"10" | b"20" | b"30" | b"40" | b"50" | b"60" => Some(literal[0] - b'1'),
        _ => None,
    };
    match named {
        Some(index) if usize::from(index) < LEVEL_NAMES.len() => Some(Text::Level(index)),
        _ => scalar(line, value),
    }
}

fn time_text(line: &[u8], value: Span) -> Option<Text> {
    time_of(value.of(line)).map(|_| Text::Raw(value))
}

fn time_of(literal: &[u8]) -> Option<i64> {
    match literal.first()? {
        b'"' if !literal.contains(&b'\\') => rfc3339(&literal[1..literal.len() - 1]),
        b'"' => rfc3339(literal_text(literal).as_bytes()),
        b'-' | b'0'..=b'9' => epoch(std::str::from_utf8(literal).ok()?),
        _ => None,
    }
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude.
fn epoch(number: &str) -> Option<i64> {
    if let Ok(i) = number.parse::<i64>() {
        let scale: i64 = match i.unsigned_abs() {
            0..100_000_000_000 => 1_000_000_000,
            100_000_000_000..100_000_000_000_000 => 1_000_000,
            100_000_000_000_000..100_000_000_000_000_000 => 1_000,
            _ => 1,
        };
        return i.checked_mul(scale);
    }
    let f: f64 = number.parse().ok()?;
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

    fn text(line: &str, text: &Option<Text>) -> String {
        logdriver_lines::text::text_of(line.as_bytes(), text.as_ref().expect("present"))
            .into_owned()
    }

    #[test]
    fn well_known_keys_are_found_and_the_rest_kept_in_order() {
        let line = r#"{ "ts":1700000000.5, "level":30,"msg":"h\u00ed","trace_id":"abc","z":1,"a":{"b":[1,"}"]},"message":"second"}"#;
        let f = fields(line);
        assert_eq!(text(line, &f.level), "info");
        assert_eq!(text(line, &f.message), "hí");
        assert_eq!(text(line, &f.trace_id), "abc");
        assert_eq!(f.time_nano, Some(1_700_000_000_500_000_000));
        let rest: Vec<String> = f
            .rest
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    String::from_utf8_lossy(k.of(line.as_bytes())),
                    String::from_utf8_lossy(v.of(line.as_bytes()))
                )
            })
            .collect();
        assert_eq!(
            rest,
            [r#""z":1"#, r#""a":{"b":[1,"}"]}"#, r#""message":"second""#]
        );
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
        let unreadable = fields(r#"{"time":"yesterday"}"#);
        assert_eq!((unreadable.time_nano, unreadable.rest.len()), (None, 1));
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
        let nested_wide: Vec<String> = (0..300).map(|i| format!("\"k{i}\":0")).collect();
        let nested = format!("{{\"a\":{{{}}}}}", nested_wide.join(","));
        assert!(matches!(parse(nested.as_bytes(), CAPS), Parsed::OverLimit));
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

    #[test]
    #[ignore]
    fn speed() {
        let lines: Vec<String> = (0..100_000).map(|n| format!(r#"{{"time":"2026-12-03T10:00:{:02}.{:03}Z","level":"info","msg":"request served","trace_id":"{:032x}","path":"/api/orders/{}","duration_ms":{},"user":{{"id":{},"plan":"pro"}}}}"#, n % 60, n % 1000, n, n % 1000, n % 97, n % 5000)).collect();
        let t = std::time::Instant::now();
        for l in &lines {
            assert!(matches!(parse(l.as_bytes(), CAPS), Parsed::Fields(_)));
        }
        println!("parse: {:.3} us/line", t.elapsed().as_secs_f64() * 10.0);
    }
}

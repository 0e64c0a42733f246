//! What the processing stage adds to a record: how many lines it joins (multiline), why
//! it was cut, and the fields of a structured (JSON) line.
//!
//! A record without an `Event` is one plain line, the common case; the stage attaches one
//! only to what it changed. `encode`/`decode` give the event a byte form, so that it
//! crosses to a sink's extension module in the batch's column form and survives the spool.

/// Bytes that are not an encoded `Event` (a caller's bug or a damaged spool).
#[derive(Debug)]
pub struct BadEvent;

/// Why an event was sent before its rule ended it; the event carries a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    MaxLines,
    MaxBytes,
    /// The memory budget had no room to hold it open.
    Memory,
}

impl Cut {
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::MaxLines => "max-lines",
            Cut::MaxBytes => "max-bytes",
            Cut::Memory => "memory",
        }
    }

    fn code(cut: Option<Cut>) -> u8 {
        match cut {
            None => 0,
            Some(Cut::MaxLines) => 1,
            Some(Cut::MaxBytes) => 2,
            Some(Cut::Memory) => 3,
        }
    }

    fn from_code(code: u8) -> Result<Option<Cut>, BadEvent> {
        Ok(match code {
            0 => None,
            1 => Some(Cut::MaxLines),
            2 => Some(Cut::MaxBytes),
            3 => Some(Cut::Memory),
            _ => return Err(BadEvent),
        })
    }
}

/// Bytes `start..start + len` of the record's line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn of<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        &line[self.start as usize..(self.start + self.len) as usize]
    }
}

/// Level names for the numbers pino and bunyan write (10, 20, ... 60).
pub const LEVEL_NAMES: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// A well-known value: a JSON string or number literal of the line, or a level name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Raw(Span),
    Level(u8),
}

/// A JSON line's well-known keys and its other members, as places in the line (the line
/// was validated, so each is a JSON literal as it came): nothing is copied or re-escaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub level: Option<Text>,
    pub message: Option<Text>,
    pub trace_id: Option<Text>,
    pub span_id: Option<Text>,
    pub service: Option<Text>,
    /// The line's own time, when it had one in a form the stage reads (RFC 3339 or epoch).
    pub time_nano: Option<i64>,
    /// The other members: (key literal with its quotes, value literal), in order.
    pub rest: Vec<(Span, Span)>,
}

impl Fields {
    pub fn texts(&self) -> [&Option<Text>; 5] {
        [
            &self.level,
            &self.message,
            &self.trace_id,
            &self.span_id,
            &self.service,
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Lines joined into this record (1 for a structured line that was not joined).
    pub lines: u32,
    pub cut: Option<Cut>,
    pub fields: Option<Fields>,
}

impl Event {
    /// Whether renderers mark the record as a multiline event.
    pub fn joined(&self) -> bool {
        self.lines > 1 || self.cut.is_some()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lines.to_le_bytes());
        out.push(Cut::code(self.cut));
        let Some(fields) = &self.fields else {
            out.push(0);
            return;
        };
        out.push(if fields.time_nano.is_some() { 2 } else { 1 });
        out.extend_from_slice(&fields.time_nano.unwrap_or(0).to_le_bytes());
        for text in fields.texts() {
            match text {
                None => out.push(0),
                Some(Text::Raw(span)) => {
                    out.push(1);
                    put_span(span, out);
                }
                Some(Text::Level(index)) => out.extend_from_slice(&[2, *index]),
            }
        }
        out.extend_from_slice(&(fields.rest.len() as u32).to_le_bytes());
        for (key, value) in &fields.rest {
            put_span(key, out);
            put_span(value, out);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, BadEvent> {
        let mut reader = Reader { bytes, at: 0 };
        let lines = reader.u32()?;
        let cut = Cut::from_code(reader.take(1)?[0])?;
        let kind = reader.take(1)?[0];
        let fields = match kind {
            0 => None,
            1 | 2 => {
                let time = i64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
                let mut texts = [None; 5];
                for text in &mut texts {
                    *text = match reader.take(1)?[0] {
                        0 => None,
                        1 => Some(Text::Raw(reader.span()?)),
                        2 => Some(Text::Level(reader.take(1)?[0])),
                        _ => return Err(BadEvent),
                    };
                }
                let count = reader.u32()? as usize;
                let mut rest = Vec::with_capacity(count.min(bytes.len() / 16));
                for _ in 0..count {
                    rest.push((reader.span()?, reader.span()?));
                }
                let [level, message, trace_id, span_id, service] = texts;
                Some(Fields {
                    level,
                    message,
                    trace_id,
                    span_id,
                    service,
                    time_nano: (kind == 2).then_some(time),
                    rest,
                })
            }
            _ => return Err(BadEvent),
        };
        if reader.at != bytes.len() {
            return Err(BadEvent);
        }
        Ok(Event { lines, cut, fields })
    }
}

fn put_span(span: &Span, out: &mut Vec<u8>) {
    out.extend_from_slice(&span.start.to_le_bytes());
    out.extend_from_slice(&span.len.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadEvent> {
        let end = self.at.checked_add(n).ok_or(BadEvent)?;
        let out = self.bytes.get(self.at..end).ok_or(BadEvent)?;
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, BadEvent> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn span(&mut self) -> Result<Span, BadEvent> {
        Ok(Span {
            start: self.u32()?,
            len: self.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for event in [
            Event {
                lines: 40,
                cut: Some(Cut::MaxBytes),
                fields: None,
            },
            Event {
                lines: 1,
                cut: None,
                fields: Some(Fields {
                    level: Some(Text::Level(3)),
                    message: Some(Text::Raw(Span { start: 5, len: 4 })),
                    trace_id: None,
                    span_id: Some(Text::Raw(Span::default())),
                    service: None,
                    time_nano: Some(-1),
                    rest: vec![(Span { start: 1, len: 3 }, Span { start: 5, len: 1 })],
                }),
            },
        ] {
            let mut bytes = Vec::new();
            event.encode(&mut bytes);
            assert_eq!(Event::decode(&bytes).unwrap(), event);
            assert!(Event::decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }
}

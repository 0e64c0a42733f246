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

/// A JSON line's well-known keys, taken out, and the rest of its object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub level: Option<String>,
    pub message: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub service: Option<String>,
    /// The line's own time, when it had one in a form the stage reads (RFC 3339 or epoch).
    pub time_nano: Option<i64>,
    /// The other keys as one compact JSON object (`{}` if none), re-serialised: safe to embed.
    pub rest: String,
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
        for text in [
            &fields.level,
            &fields.message,
            &fields.trace_id,
            &fields.span_id,
            &fields.service,
        ] {
            put_text(text.as_deref(), out);
        }
        put_text(Some(&fields.rest), out);
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, BadEvent> {
        let mut reader = Reader { bytes, at: 0 };
        let lines = u32::from_le_bytes(reader.take(4)?.try_into().expect("4 bytes"));
        let cut = Cut::from_code(reader.take(1)?[0])?;
        let kind = reader.take(1)?[0];
        let fields = match kind {
            0 => None,
            1 | 2 => {
                let time = i64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
                let mut texts = Vec::with_capacity(6);
                for _ in 0..6 {
                    texts.push(reader.text()?);
                }
                let mut texts = texts.into_iter();
                let mut next = || texts.next().expect("six texts");
                Some(Fields {
                    level: next(),
                    message: next(),
                    trace_id: next(),
                    span_id: next(),
                    service: next(),
                    time_nano: (kind == 2).then_some(time),
                    rest: next().unwrap_or_default(),
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

const ABSENT: u32 = u32::MAX;

fn put_text(text: Option<&str>, out: &mut Vec<u8>) {
    match text {
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        Some(text) => {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
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

    fn text(&mut self) -> Result<Option<String>, BadEvent> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if len == ABSENT {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| BadEvent)
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
                    level: Some("warn".into()),
                    message: Some("hé".into()),
                    trace_id: None,
                    span_id: Some(String::new()),
                    service: None,
                    time_nano: Some(-1),
                    rest: "{\"a\":1}".into(),
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

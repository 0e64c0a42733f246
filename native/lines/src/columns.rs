//! A batch's column form: how `Lines` cross from the core's extension module to a sink's.
//!
//! `data` is the lines back to back, then the text of any partial ids and unusual
//! sources; `index` is one `ENTRY`-byte little-endian entry per line: source kind (u8:
//! 0 stdout, 1 stderr, 2 other), partial flag (u8), last (u8), padding (u8), ordinal
//! (i32), time in ns (i64), then (start, length) u32 pairs of the line, the partial id
//! and the other source's name in `data`. Export copies the lines once (a memcpy);
//! import borrows `data` and decodes the index, about 10 ns per line.

use crate::{Lines, Partial, Record, Source};

pub const ENTRY: usize = 40;

/// Why an index does not describe `data` (a caller's bug, not a log line's).
#[derive(Debug)]
pub struct BadColumns;

fn put_span(start: usize, len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(start as u32).to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

/// `(data, index)` of `lines`.
pub fn export(lines: &Lines) -> (Vec<u8>, Vec<u8>) {
    let mut data = lines.arena.clone();
    let mut index = Vec::with_capacity(lines.records.len() * ENTRY);
    for record in &lines.records {
        let kind = match record.source {
            Source::Stdout => 0u8,
            Source::Stderr => 1,
            Source::Other(_) => 2,
        };
        let (flag, last, ordinal) = match &record.partial {
            Some(p) => (1u8, u8::from(p.last), p.ordinal),
            None => (0, 0, 0),
        };
        index.extend_from_slice(&[kind, flag, last, 0]);
        index.extend_from_slice(&ordinal.to_le_bytes());
        index.extend_from_slice(&record.time_nano.to_le_bytes());
        put_span(record.start, record.end - record.start, &mut index);
        for text in [
            record.partial.as_ref().map(|p| p.id.as_str()),
            match &record.source {
                Source::Other(name) => Some(name.as_str()),
                _ => None,
            },
        ] {
            let text = text.unwrap_or("");
            put_span(data.len(), text.len(), &mut index);
            data.extend_from_slice(text.as_bytes());
        }
    }
    (data, index)
}

fn u32_at(entry: &[u8], at: usize) -> usize {
    u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn text_at(data: &[u8], entry: &[u8], at: usize) -> Result<String, BadColumns> {
    let (start, len) = (u32_at(entry, at), u32_at(entry, at + 4));
    let bytes = data.get(start..start + len).ok_or(BadColumns)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| BadColumns)
}

/// The lines of `data` as `index` describes them, borrowing `data`.
pub fn import<'a>(data: &'a [u8], index: &[u8]) -> Result<Lines<&'a [u8]>, BadColumns> {
    if !index.len().is_multiple_of(ENTRY) {
        return Err(BadColumns);
    }
    let mut records = Vec::with_capacity(index.len() / ENTRY);
    for entry in index.chunks_exact(ENTRY) {
        let source = match entry[0] {
            0 => Source::Stdout,
            1 => Source::Stderr,
            2 => Source::Other(text_at(data, entry, 32)?),
            _ => return Err(BadColumns),
        };
        let partial = match entry[1] {
            0 => None,
            _ => Some(Partial {
                id: text_at(data, entry, 24)?,
                ordinal: i32::from_le_bytes(entry[4..8].try_into().expect("4 bytes")),
                last: entry[2] != 0,
            }),
        };
        let (start, len) = (u32_at(entry, 16), u32_at(entry, 20));
        if start + len > data.len() {
            return Err(BadColumns);
        }
        records.push(Record {
            source,
            time_nano: i64::from_le_bytes(entry[8..16].try_into().expect("8 bytes")),
            start,
            end: start + len,
            partial,
        });
    }
    Ok(Lines {
        arena: data,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut lines = Lines::default();
        lines.push(Source::Stdout, -5, b"hello", None);
        lines.push(
            Source::Other("weird".into()),
            i64::MAX,
            b"",
            Some(Partial {
                id: "p1".into(),
                ordinal: -3,
                last: true,
            }),
        );
        lines.push(Source::Stderr, 7, "ünï".as_bytes(), None);
        let (data, index) = export(&lines);
        let back = import(&data, &index).unwrap();
        assert_eq!(back.records, lines.records);
        for record in &lines.records {
            assert_eq!(back.line(record), lines.line(record));
        }
        assert!(import(&data, &index[..39]).is_err());
    }
}

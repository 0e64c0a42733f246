//! A batch's column form: how `Lines` cross from the core's extension module to a sink's.
//!
//! `data` is the lines back to back (the batch's own buffer, lent without a copy);
//! `extras` holds the text of any partial ids and unusual sources; `index` is one
//! `ENTRY`-byte little-endian entry per line: source kind (u8: 0 stdout, 1 stderr,
//! 2 other), partial flag (u8), last (u8), padding (u8), ordinal (i32), time in ns
//! (i64), then (start, length) u32 pairs of the line in `data`, and of the partial id,
//! the other source's name and the encoded `Event` (length 0: none) in `extras`. Import
//! borrows `data` and decodes the index, about 10 ns per line.

use crate::{Event, Lines, Partial, Record, Source};

pub const ENTRY: usize = 48;

/// Why an index does not describe `data` (a caller's bug, not a log line's).
#[derive(Debug)]
pub struct BadColumns;

/// `(extras, index)` of `lines`: what the column form adds to the lines themselves.
pub fn export(lines: &Lines) -> (Vec<u8>, Vec<u8>) {
    let mut extras = Vec::new();
    let mut index = vec![0u8; lines.records.len() * ENTRY];
    for (record, entry) in lines.records.iter().zip(index.chunks_exact_mut(ENTRY)) {
        let kind = match record.source {
            Source::Stdout => 0u8,
            Source::Stderr => 1,
            Source::Other(_) => 2,
        };
        let (flag, last, ordinal) = match &record.partial {
            Some(p) => (1u8, u8::from(p.last), p.ordinal),
            None => (0, 0, 0),
        };
        entry[..4].copy_from_slice(&[kind, flag, last, 0]);
        entry[4..8].copy_from_slice(&ordinal.to_le_bytes());
        entry[8..16].copy_from_slice(&record.time_nano.to_le_bytes());
        let other = match &record.source {
            Source::Other(name) => name.as_str(),
            _ => "",
        };
        let id = record.partial.as_ref().map_or("", |p| p.id.as_str());
        let mut spans = [
            (record.start, record.end - record.start),
            (0, 0),
            (0, 0),
            (0, 0),
        ];
        for (slot, text) in [(1, id), (2, other)] {
            spans[slot] = (extras.len(), text.len());
            extras.extend_from_slice(text.as_bytes());
        }
        if let Some(event) = &record.event {
            let start = extras.len();
            event.encode(&mut extras);
            spans[3] = (start, extras.len() - start);
        }
        for (i, (start, len)) in spans.into_iter().enumerate() {
            entry[16 + i * 8..20 + i * 8].copy_from_slice(&(start as u32).to_le_bytes());
            entry[20 + i * 8..24 + i * 8].copy_from_slice(&(len as u32).to_le_bytes());
        }
    }
    (extras, index)
}

fn u32_at(entry: &[u8], at: usize) -> usize {
    u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes")) as usize
}

fn text_at(extras: &[u8], entry: &[u8], at: usize) -> Result<String, BadColumns> {
    let (start, len) = (u32_at(entry, at), u32_at(entry, at + 4));
    let bytes = extras.get(start..start + len).ok_or(BadColumns)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| BadColumns)
}

/// The lines of `data` as `index` describes them, borrowing `data`.
pub fn import<'a>(
    data: &'a [u8],
    extras: &[u8],
    index: &[u8],
) -> Result<Lines<&'a [u8]>, BadColumns> {
    if !index.len().is_multiple_of(ENTRY) {
        return Err(BadColumns);
    }
    let mut records = Vec::with_capacity(index.len() / ENTRY);
    for entry in index.chunks_exact(ENTRY) {
        let source = match entry[0] {
            0 => Source::Stdout,
            1 => Source::Stderr,
            2 => Source::Other(text_at(extras, entry, 32)?),
            _ => return Err(BadColumns),
        };
        let partial = match entry[1] {
            0 => None,
            _ => Some(Partial {
                id: text_at(extras, entry, 24)?,
                ordinal: i32::from_le_bytes(entry[4..8].try_into().expect("4 bytes")),
                last: entry[2] != 0,
            }),
        };
        let (start, len) = (u32_at(entry, 16), u32_at(entry, 20));
        if start + len > data.len() {
            return Err(BadColumns);
        }
        let event = match u32_at(entry, 44) {
            0 => None,
            len => {
                let at = u32_at(entry, 40);
                let bytes = extras.get(at..at + len).ok_or(BadColumns)?;
                Some(Box::new(Event::decode(bytes).map_err(|_| BadColumns)?))
            }
        };
        records.push(Record {
            source,
            time_nano: i64::from_le_bytes(entry[8..16].try_into().expect("8 bytes")),
            start,
            end: start + len,
            partial,
            event,
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
        lines.records[2].event = Some(Box::new(Event {
            lines: 3,
            cut: Some(crate::Cut::MaxLines),
            fields: None,
        }));
        let (extras, index) = export(&lines);
        let back = import(&lines.arena, &extras, &index).unwrap();
        assert_eq!(back.records, lines.records);
        for record in &lines.records {
            assert_eq!(back.line(record), lines.line(record));
        }
        assert!(import(&lines.arena, &extras, &index[..47]).is_err());
    }
}

//! Docker's FIFO wire format: 4-byte big-endian length + protobuf `LogEntry`.
//!
//! Mirrors `logdriver/_framing.py` and the protobuf schema in `proto/entry.proto`;
//! the Python tests check both decoders agree on arbitrary input.

/// Every daemon frame body starts with field 1 (`source`): tag 0x0A, length 6, "std".
pub const SOURCE_FIELD_START: &[u8] = b"\x0a\x06std";

pub use logdriver_lines::{Partial, Source};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry<'a> {
    pub source: Source,
    pub time_nano: i64,
    pub line: &'a [u8],
    pub partial: bool,
    pub meta: Option<Partial>,
    /// logdriver's own field (`EVENT_FIELD`, in its spool only): an encoded `Event`.
    pub event: Option<&'a [u8]>,
}

#[derive(Debug, Default, Clone)]
pub struct FrameStats {
    pub frames: u64,
    pub bytes: u64,
    pub oversize_frames: u64,
    pub skipped_bytes: u64,
    pub truncated_bytes_at_eof: u64,
}

/// Splits a byte stream into frame bodies; resynchronises after an oversize header.
pub struct Framer {
    pub max_frame_size: usize,
    pending: Vec<u8>,
    resyncing: bool,
    pub stats: FrameStats,
}

impl Framer {
    pub fn new(max_frame_size: usize) -> Self {
        Framer {
            max_frame_size,
            pending: Vec::new(),
            resyncing: false,
            stats: FrameStats::default(),
        }
    }

    /// Feed bytes; call `on_frame(body)` per complete frame and `on_raw(span)` per
    /// contiguous span of whole frames (headers included, garbage excluded), for the store.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_frame: impl FnMut(&[u8]),
        mut on_raw: impl FnMut(&[u8]),
    ) {
        // Work on `data` directly unless a frame straddles the previous read.
        let joined;
        let buf: &[u8] = if self.pending.is_empty() {
            data
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            joined = pending;
            &joined
        };
        let mut pos = 0usize;
        let mut start = 0usize;
        loop {
            if self.resyncing {
                match find_header(buf, pos, self.max_frame_size) {
                    None => {
                        let keep = pos.max(buf.len().saturating_sub(SOURCE_FIELD_START.len() + 3));
                        self.stats.skipped_bytes += (keep - pos) as u64;
                        pos = keep;
                        start = keep;
                        break;
                    }
                    Some(found) => {
                        self.stats.skipped_bytes += (found - pos) as u64;
                        pos = found;
                        start = found;
                        self.resyncing = false;
                    }
                }
            }
            if buf.len() - pos < 4 {
                break;
            }
            let length =
                u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
            if length > self.max_frame_size {
                self.stats.oversize_frames += 1;
                if pos > start {
                    self.stats.bytes += (pos - start) as u64;
                    on_raw(&buf[start..pos]);
                }
                self.resyncing = true;
                self.stats.skipped_bytes += 1;
                pos += 1;
                start = pos;
                continue;
            }
            let end = pos + 4 + length;
            if end > buf.len() {
                break;
            }
            on_frame(&buf[pos + 4..end]);
            self.stats.frames += 1;
            pos = end;
        }
        if pos > start {
            self.stats.bytes += (pos - start) as u64;
            on_raw(&buf[start..pos]);
        }
        self.pending = buf[pos..].to_vec();
    }

    /// End of stream: whatever is left is a truncated frame.
    pub fn finish(&mut self) {
        self.stats.truncated_bytes_at_eof += self.pending.len() as u64;
        self.pending.clear();
    }
}

fn find_header(buf: &[u8], start: usize, max_frame_size: usize) -> Option<usize> {
    let mut at = start + 4;
    while at + SOURCE_FIELD_START.len() <= buf.len() {
        let rel = buf[at..]
            .windows(SOURCE_FIELD_START.len())
            .position(|w| w == SOURCE_FIELD_START)?;
        let hit = at + rel;
        let h = hit - 4;
        let length = u32::from_be_bytes([buf[h], buf[h + 1], buf[h + 2], buf[h + 3]]) as usize;
        if length >= SOURCE_FIELD_START.len() && length <= max_frame_size {
            return Some(h);
        }
        at = hit + 1;
    }
    None
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(field: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(field << 3 | 2);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A field number no `LogEntry` uses, for what the processing stage added to a record
/// (lines joined, parsed fields), so that a spooled event comes back whole.
pub const EVENT_FIELD: u64 = 1000;

/// One frame (4-byte big-endian length + LogEntry), fields in ascending order as gogo writes them.
pub fn encode_frame(
    source: &str,
    time_nano: i64,
    line: &[u8],
    partial: Option<&Partial>,
    event: Option<&logdriver_lines::Event>,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::with_capacity(line.len() + 32);
    if !source.is_empty() {
        put_bytes(1, source.as_bytes(), &mut body);
    }
    if time_nano != 0 {
        body.push(2 << 3);
        put_varint(time_nano as u64, &mut body);
    }
    if !line.is_empty() {
        put_bytes(3, line, &mut body);
    }
    if let Some(p) = partial {
        body.extend_from_slice(&[4 << 3, 1]);
        let mut meta = Vec::new();
        if p.last {
            meta.extend_from_slice(&[1 << 3, 1]);
        }
        if !p.id.is_empty() {
            put_bytes(2, p.id.as_bytes(), &mut meta);
        }
        if p.ordinal != 0 {
            meta.push(3 << 3);
            put_varint(i64::from(p.ordinal) as u64, &mut meta);
        }
        put_bytes(5, &meta, &mut body);
    }
    if let Some(event) = event {
        let mut bytes = Vec::new();
        event.encode(&mut bytes);
        put_varint(EVENT_FIELD << 3 | 2, &mut body);
        put_varint(bytes.len() as u64, &mut body);
        body.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
}

#[derive(Debug)]
pub struct DecodeError;

impl From<logdriver_lines::InvalidUtf8> for DecodeError {
    fn from(_: logdriver_lines::InvalidUtf8) -> Self {
        DecodeError
    }
}

/// A value varint as upb reads it: at most 10 bytes; bits past the 64th are dropped.
fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos).ok_or(DecodeError)?;
        *pos += 1;
        // The 10th byte brings bit 63 only; upb drops the rest (and so do we).
        value |= u64::from(byte & if shift == 63 { 1 } else { 0x7f }) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(DecodeError)
}

fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let length = usize::try_from(varint(buf, pos)?).map_err(|_| DecodeError)?;
    let end = pos.checked_add(length).ok_or(DecodeError)?;
    let slice = buf.get(*pos..end).ok_or(DecodeError)?;
    *pos = end;
    Ok(slice)
}

/// Nesting limit for groups, as upb's default decode depth.
const MAX_DEPTH: u32 = 100;

/// Skip one field's value; a group is skipped whole, up to its matching end tag.
fn skip(buf: &[u8], pos: &mut usize, field: u64, wire: u64, depth: u32) -> Result<(), DecodeError> {
    match wire {
        0 => varint(buf, pos).map(|_| ()),
        1 | 5 => {
            let size = if wire == 1 { 8 } else { 4 };
            if *pos + size > buf.len() {
                return Err(DecodeError);
            }
            *pos += size;
            Ok(())
        }
        2 => delimited(buf, pos).map(|_| ()),
        3 => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError);
            }
            loop {
                let (inner, inner_wire) = key(buf, pos)?;
                if inner_wire == 4 {
                    return if inner == field {
                        Ok(())
                    } else {
                        Err(DecodeError)
                    };
                }
                skip(buf, pos, inner, inner_wire, depth + 1)?;
            }
        }
        _ => Err(DecodeError), // an end-group tag with no group open, or wire types 6 and 7
    }
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError)
}

/// A field key: a varint of at most 5 bytes that fits 32 bits, field number ≥ 1, wire type ≤ 5.
fn key(buf: &[u8], pos: &mut usize) -> Result<(u64, u64), DecodeError> {
    let start = *pos;
    let key = varint(buf, pos)?;
    if *pos - start > 5 || key > u64::from(u32::MAX) {
        return Err(DecodeError);
    }
    let (field, wire) = (key >> 3, key & 7);
    if field == 0 || wire > 5 {
        return Err(DecodeError);
    }
    Ok((field, wire))
}

/// Fields of a submessage: known ones through `known` (which returns false for "not mine"), the rest skipped.
fn fields(
    buf: &[u8],
    mut known: impl FnMut(u64, u64, &[u8], &mut usize) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wire) = key(buf, &mut pos)?;
        if !known(field, wire, buf, &mut pos)? {
            skip(buf, &mut pos, field, wire, 0)?;
        }
    }
    Ok(())
}

fn decode_partial(buf: &[u8], into: &mut Partial) -> Result<(), DecodeError> {
    fields(buf, |field, wire, buf, pos| {
        match (field, wire) {
            (1, 0) => into.last = varint(buf, pos)? != 0,
            (2, 2) => into.id = utf8(delimited(buf, pos)?)?,
            (3, 0) => into.ordinal = varint(buf, pos)? as i32,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// `LogAttr` (field 6, Engine 29.5+): not used, but checked as upb checks it (strings are UTF-8).
fn check_attr(buf: &[u8]) -> Result<(), DecodeError> {
    fields(buf, |field, wire, buf, pos| {
        match (field, wire) {
            (1, 2) | (2, 2) => {
                std::str::from_utf8(delimited(buf, pos)?).map_err(|_| DecodeError)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Decode one `LogEntry` body with proto3 semantics (absent = default, last value wins,
/// submessages merge, unknown fields skipped, `string` fields must be UTF-8).
pub fn decode_entry(buf: &[u8]) -> Result<Entry<'_>, DecodeError> {
    let mut entry = Entry {
        source: Source::Other(String::new()),
        ..Entry::default()
    };
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wire) = key(buf, &mut pos)?;
        match (field, wire) {
            (1, 2) => entry.source = Source::from_bytes(delimited(buf, &mut pos)?)?,
            (2, 0) => entry.time_nano = varint(buf, &mut pos)? as i64,
            (3, 2) => entry.line = delimited(buf, &mut pos)?,
            (4, 0) => entry.partial = varint(buf, &mut pos)? != 0,
            (5, 2) => {
                let body = delimited(buf, &mut pos)?;
                let meta = entry.meta.get_or_insert(Partial {
                    id: String::new(),
                    ordinal: 0,
                    last: false,
                });
                decode_partial(body, meta)?;
            }
            (6, 2) => check_attr(delimited(buf, &mut pos)?)?,
            (EVENT_FIELD, 2) => entry.event = Some(delimited(buf, &mut pos)?),
            _ => skip(buf, &mut pos, field, wire, 0)?,
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn splits_across_feeds() {
        let body = b"\x0a\x06stdout\x10\x05\x1a\x02hi";
        let data = [frame(body), frame(body)].concat();
        let mut framer = Framer::new(1 << 20);
        let mut got = Vec::new();
        let mut raw = Vec::new();
        for byte in &data {
            framer.feed(
                std::slice::from_ref(byte),
                |b| got.push(b.to_vec()),
                |r| raw.extend_from_slice(r),
            );
        }
        assert_eq!(raw, data);
        assert_eq!(got, vec![body.to_vec(), body.to_vec()]);
        let entry = decode_entry(body).unwrap();
        assert_eq!(
            (entry.source.as_str(), entry.time_nano, entry.line),
            ("stdout", 5, &b"hi"[..])
        );
    }

    #[test]
    fn matches_upb_on_keys_groups_and_long_varints() {
        assert!(decode_entry(b"\x80\x80\x80\x80\x10\x00").is_err()); // field number past 2^29
        assert!(decode_entry(b"\xf8\xff\xff\xff\x0f\x00").is_ok()); // the largest field number
        assert!(decode_entry(b"\x33\x08\x01\x34").is_ok()); // an unknown group, skipped
        assert!(decode_entry(b"\x33\x3c").is_err()); // a group closed by another field's end tag
        assert!(decode_entry(b"\x34").is_err()); // an end tag with no group
        assert!(decode_entry(b"\x32\x01a").is_err()); // a LogAttr that is not a message
        let ten = [&b"\x10"[..], &[0xff; 9], &[0x02]].concat();
        assert_eq!(decode_entry(&ten).unwrap().time_nano, i64::MAX); // bits past 64 dropped
        assert!(decode_entry(&[&b"\x10"[..], &[0xff; 10], &[0x01]].concat()).is_err());
        // 11 bytes
    }

    #[test]
    fn rejects_truncated_varint() {
        assert!(decode_entry(b"\x10\xff").is_err());
        assert!(decode_entry(b"\x1a\x05ab").is_err());
    }
}

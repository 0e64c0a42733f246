//! `docker logs` from the store: stored frames re-encoded as json-file would serve them.
//!
//! The store keeps the FIFO's frames verbatim; ReadLogs decodes them with the same
//! decoder as the FIFO path (`wire::decode_entry`), so there is one truth about what a
//! frame holds. What json-file does and this copies (docker-logging-protocol.md §4):
//! only `stdout`/`stderr` entries are sent; the newline the daemon stripped is put back
//! on complete lines and on the `last` piece of a split one; each invalid UTF-8 byte
//! becomes U+FFFD (Go's encoding/json); `--since`/`--until` filter by entry time.

use crate::wire::{decode_entry, encode_frame, Source};

/// Length of the whole frames at the start of `data`, and how many there are.
pub fn whole_frames(data: &[u8]) -> (usize, usize) {
    let (mut pos, mut count) = (0usize, 0usize);
    while pos + 4 <= data.len() {
        let length =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        if pos + 4 + length > data.len() {
            break;
        }
        pos += 4 + length;
        count += 1;
    }
    (pos, count)
}

/// `line` with every byte of an invalid UTF-8 sequence replaced by U+FFFD, as Go's JSON encoder does.
pub fn go_json_utf8(mut line: &[u8], out: &mut Vec<u8>) {
    loop {
        match std::str::from_utf8(line) {
            Ok(valid) => {
                out.extend_from_slice(valid.as_bytes());
                return;
            }
            Err(error) => {
                let (valid, rest) = line.split_at(error.valid_up_to());
                out.extend_from_slice(valid);
                let bad = error.error_len().unwrap_or(rest.len());
                for _ in 0..bad {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                }
                line = &rest[bad..];
            }
        }
    }
}

pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub past_until: bool,
}

impl Filter {
    /// Re-encode the whole frames of `data`, skipping the first `skip`; returns the bytes
    /// consumed (whole frames; a frame past `until` ends the read and is not consumed).
    pub fn encode(&mut self, data: &[u8], mut skip: usize, out: &mut Vec<u8>) -> usize {
        let mut pos = 0usize;
        let mut line = Vec::new();
        while pos + 4 <= data.len() && !self.past_until {
            let length =
                u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]])
                    as usize;
            let end = pos + 4 + length;
            if end > data.len() {
                break;
            }
            let body = &data[pos + 4..end];
            if skip > 0 {
                skip -= 1;
                pos = end;
                continue;
            }
            if let Ok(entry) = decode_entry(body) {
                if matches!(entry.source, Source::Stdout | Source::Stderr) {
                    if self.until.is_some_and(|until| entry.time_nano > until) {
                        self.past_until = true;
                        break;
                    }
                    if self.since.is_none_or(|since| entry.time_nano >= since) {
                        line.clear();
                        go_json_utf8(entry.line, &mut line);
                        if !entry.partial || entry.meta.as_ref().is_some_and(|m| m.last) {
                            line.push(b'\n');
                        }
                        encode_frame(
                            entry.source.as_str(),
                            entry.time_nano,
                            &line,
                            None,
                            None,
                            out,
                        );
                    }
                }
            }
            pos = end;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_each_invalid_byte() {
        let mut out = Vec::new();
        go_json_utf8(b"a\xe2\x82b\xed\xa0\x80c\xf0\x90", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\u{fffd}\u{fffd}b\u{fffd}\u{fffd}\u{fffd}c\u{fffd}\u{fffd}"
        );
    }
}

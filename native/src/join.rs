//! Rejoining Docker's 16 KiB partial chunks; tests/reference/entries.py is the reference.

use std::collections::HashMap;

use crate::wire::{Entry, Partial, Source};

pub use logdriver_lines::{Lines, Record};

#[derive(Debug, Default, Clone)]
pub struct JoinStats {
    pub entries: u64,
    pub decode_errors: u64,
    pub lines_rejoined: u64,
    pub lines_cut: u64,
    pub lines_unterminated: u64,
}

struct OpenLine {
    id: String,
    source: Source,
    time_nano: i64,
    line: Vec<u8>,
    piece: i32,
    opened: u64,
}

/// Docker keeps at most one split line open per stream; more means a corrupt or
/// hostile stream, and the oldest open line is flushed rather than held forever.
pub const MAX_OPEN_LINES: usize = 8;

/// An open line's buffer grows by at most this much at a time past this size.
const GROW_STEP: usize = 1 << 20;

pub struct Joiner {
    pub max_line_size: usize,
    open: HashMap<String, OpenLine>,
    opened: u64,
    pub stats: JoinStats,
}

impl Joiner {
    pub fn new(max_line_size: usize) -> Self {
        Joiner {
            max_line_size,
            open: HashMap::new(),
            opened: 0,
            stats: JoinStats::default(),
        }
    }

    /// Memory the open lines hold (their buffers' capacity: what the memory budget charges).
    pub fn open_bytes(&self) -> usize {
        self.open.values().map(|o| o.line.capacity()).sum()
    }

    /// Send every open line's bytes now as a piece, as the size cap does, and free its
    /// buffer (the memory budget has no room to hold them); each line stays open and its
    /// next piece follows with the next ordinal. Returns how many pieces were cut.
    pub fn cut_all(&mut self, out: &mut Lines) -> usize {
        let mut lines: Vec<&mut OpenLine> = self
            .open
            .values_mut()
            .filter(|l| !l.line.is_empty())
            .collect();
        lines.sort_by_key(|l| (l.time_nano, l.opened));
        let cut = lines.len();
        for line in lines {
            let partial = Partial {
                id: line.id.clone(),
                ordinal: line.piece,
                last: false,
            };
            let bytes = std::mem::take(&mut line.line);
            out.push_owned(line.source.clone(), line.time_nano, bytes, Some(partial));
            line.piece += 1;
        }
        for line in self.open.values_mut() {
            line.line.shrink_to_fit();
        }
        self.stats.lines_cut += cut as u64;
        cut
    }

    pub fn push(&mut self, entry: Entry<'_>, out: &mut Lines) {
        self.stats.entries += 1;
        if !entry.partial {
            out.push(entry.source, entry.time_nano, entry.line, None);
            return;
        }
        let meta = entry.meta.unwrap_or(Partial {
            id: String::new(),
            ordinal: 0,
            last: false,
        });
        // Daemons before 19.03 send no metadata: chunks of one stream are consecutive.
        let key = if meta.id.is_empty() {
            format!("\0{}", entry.source.as_str())
        } else {
            meta.id.clone()
        };
        if !self.open.contains_key(&key) && self.open.len() >= MAX_OPEN_LINES {
            self.flush_oldest(out);
        }
        let opened = &mut self.opened;
        let line = self.open.entry(key.clone()).or_insert_with(|| {
            *opened += 1;
            OpenLine {
                id: meta.id.clone(),
                source: entry.source,
                time_nano: entry.time_nano,
                line: Vec::new(),
                piece: 1,
                opened: *opened,
            }
        });
        if line.line.len() + entry.line.len() > line.line.capacity() {
            // Grow by doubling up to GROW_STEP, then a step at a time: the buffer (what the
            // memory budget charges) stays within a step of the bytes it holds.
            let step = entry.line.len().max(line.line.len().min(GROW_STEP));
            line.line.reserve_exact(step);
        }
        line.line.extend_from_slice(entry.line);
        if meta.last {
            let line = self.open.remove(&key).expect("present");
            let partial = (line.piece > 1).then_some(Partial {
                id: meta.id,
                ordinal: line.piece,
                last: true,
            });
            // Into an empty batch the line's buffer moves as it is: a rejoined line of
            // many MiB is not copied (nor grown into) a second time.
            out.push_owned(line.source, line.time_nano, line.line, partial);
            self.stats.lines_rejoined += 1;
        } else if line.line.len() >= self.max_line_size {
            let partial = Partial {
                id: line.id.clone(),
                ordinal: line.piece,
                last: false,
            };
            let bytes = std::mem::take(&mut line.line); // not kept: the budget charges capacity
            out.push_owned(line.source.clone(), line.time_nano, bytes, Some(partial));
            line.piece += 1;
            self.stats.lines_cut += 1;
        }
    }

    fn flush_oldest(&mut self, out: &mut Lines) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, l)| l.opened)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            let line = self.open.remove(&key).expect("present");
            self.stats.lines_unterminated += 1;
            let partial = Partial {
                id: line.id,
                ordinal: line.piece,
                last: false,
            };
            out.push(line.source, line.time_nano, &line.line, Some(partial));
        }
    }

    /// End of stream: every open line, oldest first, marked partial and not last.
    pub fn flush(&mut self, out: &mut Lines) {
        let mut lines: Vec<OpenLine> = self.open.drain().map(|(_, v)| v).collect();
        lines.sort_by_key(|l| (l.time_nano, l.opened));
        self.stats.lines_unterminated += lines.len() as u64;
        for line in lines {
            let partial = Partial {
                id: line.id,
                ordinal: line.piece,
                last: false,
            };
            out.push(line.source, line.time_nano, &line.line, Some(partial));
        }
    }
}

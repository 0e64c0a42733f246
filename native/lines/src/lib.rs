//! The batch of log lines that logdriver's core hands its sinks.
//!
//! The core decodes FIFOs into `Lines` (in `logdriver._native`); each sink renders them
//! in its destination's format in a Rust extension module of its own (`sinks/*/native`).
//! Python extension modules cannot share a Rust type, so a batch crosses from one to the
//! other in its column form (`columns`): the line bytes, and a fixed-size index entry per
//! line. `text` holds what renderers share (JSON strings, RFC 3339 times), `proto` the
//! protobuf encodings.

pub mod columns;
pub mod event;
pub mod proto;
#[cfg(feature = "python")]
pub mod python;
pub mod record;
pub mod text;

pub use event::{Cut, Event, Fields, Span, Text, LEVEL_NAMES};

/// A `source` or partial `id` that is not UTF-8.
#[derive(Debug)]
pub struct InvalidUtf8;

/// The stream a line came from; anything else is kept verbatim (and dropped by ReadLogs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Stdout,
    Stderr,
    Other(String),
}

impl Source {
    pub fn from_bytes(bytes: &[u8]) -> Result<Source, InvalidUtf8> {
        Ok(match bytes {
            b"stdout" => Source::Stdout,
            b"stderr" => Source::Stderr,
            other => Source::Other(String::from_utf8(other.to_vec()).map_err(|_| InvalidUtf8)?),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
            Source::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub id: String,
    pub ordinal: i32,
    pub last: bool,
}

/// One line of a batch; its bytes are `arena[start..end]` of the owning `Lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub source: Source,
    pub time_nano: i64,
    pub start: usize,
    pub end: usize,
    /// Set only for a line that could not be rejoined whole (cut at the cap, or unterminated).
    pub partial: Option<Partial>,
    /// Set only by the processing stage: lines joined, a cut marker, parsed fields.
    pub event: Option<Box<Event>>,
}

/// Lines stored back to back in one buffer: one allocation per batch, not per line.
/// The arena is owned in the core (`Vec<u8>`) and borrowed by a sink's renderer (`&[u8]`).
#[derive(Debug, Default, Clone)]
pub struct Lines<A = Vec<u8>> {
    pub arena: A,
    pub records: Vec<Record>,
}

impl Record {
    /// The time sinks give the record: a structured line's own time when it had one the
    /// stage could read, else Docker's.
    pub fn event_time(&self) -> i64 {
        self.event
            .as_ref()
            .and_then(|e| e.fields.as_ref())
            .and_then(|f| f.time_nano)
            .unwrap_or(self.time_nano)
    }
}

impl<A: AsRef<[u8]>> Lines<A> {
    pub fn line(&self, record: &Record) -> &[u8] {
        &self.arena.as_ref()[record.start..record.end]
    }

    /// Bytes of all the lines together (what buffers account for).
    pub fn line_bytes(&self) -> usize {
        self.records.iter().map(|r| r.end - r.start).sum()
    }
}

impl Lines {
    /// `push` taking the line's own buffer: into an empty batch it becomes the arena
    /// as it is (a 64 MiB partial line cut by the memory budget is not copied).
    pub fn push_owned(
        &mut self,
        source: Source,
        time_nano: i64,
        line: Vec<u8>,
        partial: Option<Partial>,
    ) {
        // Small lines are copied: the batch's arena is sized for the whole read already.
        if !self.arena.is_empty() || !self.records.is_empty() || line.len() < self.arena.capacity()
        {
            self.push(source, time_nano, &line, partial);
            return;
        }
        let end = line.len();
        self.arena = line;
        self.records.push(Record {
            source,
            time_nano,
            start: 0,
            end,
            partial,
            event: None,
        });
    }

    pub fn push(&mut self, source: Source, time_nano: i64, line: &[u8], partial: Option<Partial>) {
        let start = self.arena.len();
        self.arena.extend_from_slice(line);
        self.records.push(Record {
            source,
            time_nano,
            start,
            end: self.arena.len(),
            partial,
            event: None,
        });
    }

    /// Copy `record` of `from` (another batch) onto the end of this one, event included.
    pub fn push_from(&mut self, from: &Lines<impl AsRef<[u8]>>, record: &Record) {
        self.push(
            record.source.clone(),
            record.time_nano,
            from.line(record),
            record.partial.clone(),
        );
        if let Some(last) = self.records.last_mut() {
            last.event = record.event.clone();
        }
    }
}

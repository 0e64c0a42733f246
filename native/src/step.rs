//! A processing step: one part of a container's line path between the decoder and the
//! sinks (multiline joining, `parse=json`, and the line-policy steps after them). The
//! stage (`stage.rs`) runs its configured steps in order: what one step sends on, in
//! `process` or when a timer or the end of the stream makes it give up what it holds, goes
//! through every later step.
//!
//! A step owns its state and its counters. Its counters are a table of names and help
//! texts (`COUNTERS`), which the metrics and the reference are generated from, and the
//! values in the table's order (`values`).

use std::time::Instant;

use logdriver_lines::Lines;

/// A step's counter: its name (the `outcome` label of the processing metrics) and help.
pub type Counter = (&'static str, &'static str);

pub trait Step: Send + Sync {
    /// `input`'s records through this step. A step that changes records in place returns
    /// `input` itself (nothing copied); one that joins or drops builds another batch.
    /// Before each line a step asks `budget.spent(bytes)`: once it is, lines go on as they
    /// are (what the step holds first, so that order is kept).
    fn process(&mut self, input: Lines, now: f64, budget: &mut Budget) -> Lines;

    /// What has waited its timeout by `now` (the caller's clock), appended to `out`.
    fn flush_due(&mut self, _now: f64, _out: &mut Lines) {}

    /// Everything held (the end of the stream), appended to `out`.
    fn finish(&mut self, _out: &mut Lines) {}

    /// What is held, sent now and marked cut: the memory budget has no room to hold it.
    /// Returns how many records were cut.
    fn cut_open(&mut self, _out: &mut Lines) -> usize {
        0
    }

    /// When the oldest thing held is due, on the caller's clock.
    fn next_deadline(&self) -> Option<f64> {
        None
    }

    /// Whether the step costs a small constant of ours per line, whatever the container's
    /// options (no pattern of its own, no parsing): its caller may run any read of it on its
    /// event loop rather than hand it to a worker thread.
    fn light(&self) -> bool {
        false
    }

    /// Whether the step holds lines back that the caller should wait for before it reads
    /// more of the container's FIFO (a rate limit whose action is `block`).
    fn holds_back(&self) -> bool {
        false
    }

    /// Memory the step holds between calls (what the memory budget is charged).
    fn held_bytes(&self) -> usize {
        0
    }

    /// The step's counter table (names are unique across steps).
    fn counters(&self) -> &'static [Counter];

    /// The counters' values, in the table's order.
    fn values(&self) -> Vec<u64>;
}

/// Processing time one container may spend, in seconds of a core per second, and at
/// once: past it, its lines go on unprocessed (counted) until the allowance refills. The
/// plugin's, not the container's: its patterns and JSON cannot take a core from the rest.
pub const CPU_SHARE: f64 = 0.25;
pub const CPU_BURST: f64 = 0.05;
/// How often the clock is read: every this many lines, or bytes, whichever comes first.
const CHECK_LINES: u32 = 32;
const CHECK_BYTES: usize = 16 << 10;

/// The stage's own counter: lines a step passed on unprocessed (a line two steps passed
/// on counts twice).
pub const BUDGET_COUNTERS: &[Counter] = &[(
    "processing_over_cpu_budget",
    "lines a step passed on unprocessed: the container's processing time was spent",
)];

/// A container's processing time: a bucket of seconds, refilled at `CPU_SHARE` per
/// second up to `CPU_BURST`, charged as the steps go.
pub struct Budget {
    seconds: f64,
    since: Instant,
    started: Instant,
    lines: u32,
    bytes: usize,
    pub skipped: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        let now = Instant::now();
        Budget {
            seconds: CPU_BURST,
            since: now,
            started: now,
            lines: 0,
            bytes: 0,
            skipped: 0,
        }
    }
}

impl Budget {
    /// Charge the time since the last call (spent processing or not, refilled the same way).
    fn charge(&mut self, spent: f64, now: Instant) {
        let elapsed = now.duration_since(self.since).as_secs_f64();
        self.since = now;
        self.seconds = (self.seconds + elapsed * CPU_SHARE).min(CPU_BURST) - spent;
    }

    /// A call begins: time from here on is charged.
    pub fn begin(&mut self) {
        let now = Instant::now();
        self.charge(0.0, now);
        (self.started, self.lines, self.bytes) = (now, 0, 0);
    }

    /// A call ends: charge what it spent since the last check.
    pub fn end(&mut self) {
        let now = Instant::now();
        self.charge(now.duration_since(self.started).as_secs_f64(), now);
        (self.started, self.lines, self.bytes) = (now, 0, 0);
    }

    /// Whether the processing time is spent, before a line of `bytes`; a spent line counts.
    pub fn spent(&mut self, bytes: usize) -> bool {
        if self.lines >= CHECK_LINES || self.bytes >= CHECK_BYTES {
            let checked = Instant::now();
            self.charge(checked.duration_since(self.started).as_secs_f64(), checked);
            (self.started, self.lines, self.bytes) = (checked, 0, 0);
        }
        if self.seconds <= 0.0 {
            self.skipped += 1;
            return true;
        }
        self.lines += 1;
        self.bytes += bytes;
        false
    }
}

/// Keep the records of `lines` whose `keep` is true, in order, and give back the bytes of
/// the others: a batch's size is what buffers charge, so dropped lines must not stay in it.
/// Records lie in their arena in order (every batch is built by appending), so the kept
/// lines move down in place, with no allocation; a batch in another order is copied.
pub fn retain(lines: &mut Lines, keep: &[bool]) {
    if keep.iter().all(|k| *k) {
        return;
    }
    if !lines.records.windows(2).all(|w| w[0].end <= w[1].start) {
        let mut copy = Lines::default();
        for (record, _) in lines.records.iter().zip(keep).filter(|(_, k)| **k) {
            copy.push_from(lines, record);
        }
        *lines = copy;
        return;
    }
    let mut write = 0;
    let mut kept = Vec::with_capacity(lines.records.len());
    for (mut record, keep) in std::mem::take(&mut lines.records).into_iter().zip(keep) {
        if !keep {
            continue;
        }
        let len = record.end - record.start;
        lines.arena.copy_within(record.start..record.end, write);
        (record.start, record.end) = (write, write + len);
        write += len;
        kept.push(record);
    }
    lines.arena.truncate(write);
    lines.records = kept;
}

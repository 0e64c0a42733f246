//! The rate limit, a processing step: a container's lines per second (`rate-limit`) and
//! bytes per second (`rate-limit-bytes`), each a token bucket holding `rate-limit-burst`
//! lines (one second's worth by default) or one second's worth of bytes.
//!
//! A line that fits both buckets passes and pays; one that does not is dropped (`drop`),
//! and never silently: at most one marker record a second goes into the container's
//! stream after it, marked as the plugin's (its stream is `logdriver`), naming how many
//! lines and bytes were dropped since the last marker. The lines that pass plus the counts
//! in the markers are the lines that came in, exactly. A line matching `rate-limit-exempt`
//! passes and is not counted against the limit.
//!
//! With `block`, nothing is dropped while the container can be slowed: a line over the
//! limit is held (in order, with every line after it) and released as the buckets refill
//! (`flush_due`), and `holds_back` tells the caller to stop reading the FIFO meanwhile, so
//! the pipe fills and the writer slows. The caller stops reading `MAX_HOLD` seconds at a
//! time at most, so that `docker stop` waits no longer than that after dockerd's own 10 s
//! for its copier; what it reads then is held too, charged to the memory budget. Held lines
//! are dropped as with `drop` (counted, marked) only when the memory budget has no room for
//! them (`cut_open`). When the stream ends, what is held is sent at once, over the limit
//! and counted: it was read already, and the container is gone.

use crate::rules::Pattern;
use crate::step::{retain, Budget, Counter, Step};
use logdriver_lines::{Lines, Source};

/// The stream of the plugin's own records in a container's stream.
pub const MARKER_SOURCE: &str = "logdriver";
/// At most one marker per this many seconds, per container.
pub const MARKER_INTERVAL: f64 = 1.0;
/// The longest `block` stops reading a container's FIFO at a time.
pub const MAX_HOLD: f64 = 5.0;

pub const COUNTERS: &[Counter] = &[
    (
        "rate_limited_lines",
        "lines over rate-limit or rate-limit-bytes, dropped and named in a marker",
    ),
    ("rate_limited_bytes", "bytes of those lines"),
    ("rate_limit_markers", "marker records sent for them"),
    (
        "rate_limit_exempt",
        "lines that matched rate-limit-exempt, passed and not counted against the limit",
    ),
    (
        "rate_limit_sent_at_end",
        "lines a block rate limit held when the container's stream ended, sent at once",
    ),
    (
        "rate_limit_pattern_gave_up",
        "lines a too-costly rate-limit-exempt pattern was matched on their first bytes only",
    ),
];

/// A rate: so many per second, and how many may pass at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

struct Bucket {
    rate: Rate,
    tokens: f64,
    at: Option<f64>, // when it was last refilled, on the caller's clock
}

impl Bucket {
    fn new(rate: Rate) -> Bucket {
        Bucket {
            rate,
            tokens: rate.burst,
            at: None,
        }
    }

    fn refill(&mut self, now: f64) {
        if let Some(at) = self.at {
            let elapsed = (now - at).max(0.0);
            self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        }
        self.at = Some(now);
    }

    /// Whether `cost` may be taken. A cost bigger than the whole bucket (a line longer than
    /// a second of bytes) fits a full one, and leaves it in debt.
    fn fits(&self, cost: f64) -> bool {
        self.tokens >= cost || self.tokens >= self.rate.burst
    }

    /// When `cost` will fit, on the caller's clock.
    fn fits_at(&self, cost: f64) -> f64 {
        let at = self.at.unwrap_or(0.0);
        let needed = cost.min(self.rate.burst) - self.tokens;
        at + needed.max(0.0) / self.rate.per_second
    }
}

/// What was dropped since the last marker.
#[derive(Default)]
struct Dropped {
    lines: u64,
    bytes: u64,
    since: f64,     // the first of them, on the caller's clock
    time_nano: i64, // the last one's time: the marker's
}

pub struct RateLimit {
    lines: Option<Bucket>,
    bytes: Option<Bucket>,
    exempt: Option<Pattern>,
    block: bool,
    held: Lines, // block: lines over the limit, in order, from `held_from` on
    held_from: usize,
    dropped: Dropped,
    last_marker: f64,
    last_now: f64,
    counts: [u64; 6],
}

impl RateLimit {
    pub fn new(
        lines: Option<Rate>,
        bytes: Option<Rate>,
        exempt: Option<Pattern>,
        block: bool,
    ) -> RateLimit {
        RateLimit {
            lines: lines.map(Bucket::new),
            bytes: bytes.map(Bucket::new),
            exempt,
            block,
            held: Lines::default(),
            held_from: 0,
            dropped: Dropped::default(),
            last_marker: f64::NEG_INFINITY,
            last_now: 0.0,
            counts: [0; 6],
        }
    }

    fn exempt(&mut self, line: &[u8], budget: &mut Budget) -> bool {
        let Some(pattern) = &self.exempt else {
            return false;
        };
        // Past the processing time a line is not exempt: the limit itself costs nothing.
        if budget.spent(line.len()) {
            return false;
        }
        let found = pattern.find_bytes(line);
        self.counts[5] += u64::from(found.gave_up);
        self.counts[3] += u64::from(found.is_match);
        found.is_match
    }

    /// Whether a line of `len` bytes passes; it pays if it does.
    fn take(&mut self, len: usize) -> bool {
        let fits = self.lines.as_ref().is_none_or(|b| b.fits(1.0))
            && self.bytes.as_ref().is_none_or(|b| b.fits(len as f64));
        if fits {
            if let Some(bucket) = &mut self.lines {
                bucket.tokens -= 1.0;
            }
            if let Some(bucket) = &mut self.bytes {
                bucket.tokens -= len as f64;
            }
        }
        fits
    }

    fn drop_line(&mut self, len: usize, time_nano: i64, now: f64) {
        if self.dropped.lines == 0 {
            self.dropped.since = now;
        }
        self.dropped.lines += 1;
        self.dropped.bytes += len as u64;
        self.dropped.time_nano = time_nano;
        self.counts[0] += 1;
        self.counts[1] += len as u64;
    }

    /// The marker for what was dropped since the last one, if any, onto `out`.
    fn mark(&mut self, now: f64, out: &mut Lines) {
        if self.dropped.lines == 0 {
            return;
        }
        let seconds = (now - self.dropped.since).ceil().max(1.0) as u64;
        let text = format!(
            "logdriver: rate limit: {} lines ({} bytes) dropped in the last {} s",
            grouped(self.dropped.lines),
            grouped(self.dropped.bytes),
            seconds
        );
        out.push(
            Source::Other(MARKER_SOURCE.into()),
            self.dropped.time_nano,
            text.as_bytes(),
            None,
        );
        self.dropped = Dropped::default();
        self.last_marker = now;
        self.counts[2] += 1;
    }

    fn mark_if_due(&mut self, now: f64, out: &mut Lines) {
        if now - self.last_marker >= MARKER_INTERVAL {
            self.mark(now, out);
        }
    }
}

impl RateLimit {
    fn refill(&mut self, now: f64) {
        self.last_now = self.last_now.max(now);
        for bucket in [&mut self.lines, &mut self.bytes].into_iter().flatten() {
            bucket.refill(now);
        }
    }

    fn holding(&self) -> bool {
        self.held_from < self.held.records.len()
    }

    /// Held lines that fit now, in order, onto `out`.
    fn release(&mut self, out: &mut Lines) {
        while self.holding() {
            let record = &self.held.records[self.held_from];
            if !self.take(record.end - record.start) {
                break;
            }
            out.push_from(&self.held, &self.held.records[self.held_from]);
            self.held_from += 1;
        }
        self.compact_held();
    }

    /// Give back the memory of released lines: all of it when none is left, else once
    /// half of what is held was released.
    fn compact_held(&mut self) {
        if !self.holding() {
            self.held = Lines::default();
            self.held_from = 0;
        } else if self.held_from * 2 > self.held.records.len() {
            let mut rest = Lines::default();
            for record in &self.held.records[self.held_from..] {
                rest.push_from(&self.held, record);
            }
            (self.held, self.held_from) = (rest, 0);
        }
    }

    /// Every held line, dropped as with `drop` unless it fits now (the memory budget has no
    /// room for them); returns how many were held.
    fn give_up_held(&mut self, out: &mut Lines) -> usize {
        let held = self.held.records.len() - self.held_from;
        self.release(out);
        let now = self.last_now;
        for index in self.held_from..self.held.records.len() {
            let record = &self.held.records[index];
            let (len, time_nano) = (record.end - record.start, record.time_nano);
            self.drop_line(len, time_nano, now);
        }
        self.held_from = self.held.records.len();
        self.compact_held();
        held
    }

    fn process_blocking(&mut self, input: Lines, now: f64, budget: &mut Budget) -> Lines {
        let mut out = Lines::default();
        self.release(&mut out);
        for record in &input.records {
            let line = &input.arena[record.start..record.end];
            if self.exempt(line, budget) || (!self.holding() && self.take(line.len())) {
                out.push_from(&input, record);
            } else {
                self.held.push_from(&input, record);
            }
        }
        self.mark_if_due(now, &mut out);
        out
    }
}

/// `1234567` as `1,234,567`.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Step for RateLimit {
    fn process(&mut self, mut input: Lines, now: f64, budget: &mut Budget) -> Lines {
        self.refill(now);
        if self.block {
            return self.process_blocking(input, now, budget);
        }
        let mut keep = Vec::with_capacity(input.records.len());
        for index in 0..input.records.len() {
            let (start, end) = (input.records[index].start, input.records[index].end);
            let passes = self.exempt(&input.arena[start..end], budget) || self.take(end - start);
            if !passes {
                self.drop_line(end - start, input.records[index].time_nano, now);
            }
            keep.push(passes);
        }
        retain(&mut input, &keep);
        self.mark_if_due(now, &mut input);
        input
    }

    fn flush_due(&mut self, now: f64, out: &mut Lines) {
        self.refill(now);
        self.release(out);
        self.mark_if_due(now, out);
    }

    fn finish(&mut self, out: &mut Lines) {
        for record in &self.held.records[self.held_from..] {
            out.push_from(&self.held, record);
            self.counts[4] += 1;
        }
        self.held_from = self.held.records.len();
        self.compact_held();
        self.mark(self.last_now, out);
    }

    fn cut_open(&mut self, out: &mut Lines) -> usize {
        let held = self.give_up_held(out);
        self.mark(self.last_now, out);
        held
    }

    fn next_deadline(&self) -> Option<f64> {
        let marker = (self.dropped.lines > 0).then_some(self.last_marker + MARKER_INTERVAL);
        let release = self.holding().then(|| {
            let record = &self.held.records[self.held_from];
            let len = (record.end - record.start) as f64;
            let lines = self.lines.as_ref().map_or(0.0, |b| b.fits_at(1.0));
            lines.max(self.bytes.as_ref().map_or(0.0, |b| b.fits_at(len)))
        });
        [marker, release].into_iter().flatten().reduce(f64::min)
    }

    fn holds_back(&self) -> bool {
        self.holding()
    }

    fn light(&self) -> bool {
        self.exempt.is_none() // a bucket's arithmetic and a copy of what it lets through
    }

    fn held_bytes(&self) -> usize {
        self.held.arena.len()
            + self.held.records.len() * std::mem::size_of::<logdriver_lines::Record>()
    }

    fn counters(&self) -> &'static [Counter] {
        COUNTERS
    }

    fn values(&self) -> Vec<u64> {
        self.counts.to_vec()
    }
}

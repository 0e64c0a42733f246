//! The processing stage between the decoder and the sinks: multiline joining and
//! `parse=json`, one per container, each stream (stdout, stderr) on its own.
//!
//! Multiline rules (`Rules`) are a small state machine held as data: a preset's table
//! (`presets.rs`) or a custom start/continue pattern. A line either continues the open
//! event of its stream, or ends it and may begin the next. Limits (lines, bytes) cut an
//! event with a marker; the caller's clock (`now`, seconds) sends an event whose first line
//! has waited `timeout`. A JSON object line and a piece of a line cut by Docker's size cap
//! always go alone. Nothing is dropped: every line leaves in exactly one record.

use std::sync::Arc;
use std::time::Instant;

pub use crate::rules::{compile, Pattern, Rules, FALLBACK_PREFIX, MAX_PATTERN};
use crate::structured::{self, JsonCaps, Parsed};
use logdriver_lines::{Cut, Event, Lines, Record, Source};

/// Lines a `hold` rule may keep waiting for the line that decides them.
const MAX_HELD: usize = 4;

/// Processing time one container may spend, in seconds of a core per second, and at
/// once: past it, its lines go on unprocessed (counted) until the allowance refills. The
/// plugin's, not the container's: its patterns and JSON cannot take a core from the rest.
pub const CPU_SHARE: f64 = 0.25;
pub const CPU_BURST: f64 = 0.05;
/// A call costlier than this per byte (and than `COSTLY_MIN` in all) marks the stage costly
/// for `COSTLY_FOR` seconds: a normal pattern or JSON line costs a few ns a byte, the
/// costliest pattern that compiles about 80. The caller runs a costly stage off its loop.
const COSTLY_NS_PER_BYTE: f64 = 40.0;
const COSTLY_MIN: f64 = 200e-6;
const COSTLY_FOR: f64 = 10.0;
/// How often the clock is read: every this many lines, or bytes, whichever comes first.
const CHECK_LINES: u32 = 32;
const CHECK_BYTES: usize = 16 << 10;

/// A bucket of processing seconds, refilled at `CPU_SHARE` per second up to `CPU_BURST`.
struct CpuAllowance {
    seconds: f64,
    since: Instant,
}

impl CpuAllowance {
    fn new() -> CpuAllowance {
        CpuAllowance {
            seconds: CPU_BURST,
            since: Instant::now(),
        }
    }

    /// Charge the time since the last call (spent processing or not, refilled the same way).
    fn charge(&mut self, spent: f64, now: Instant) {
        let elapsed = now.duration_since(self.since).as_secs_f64();
        self.since = now;
        self.seconds = (self.seconds + elapsed * CPU_SHARE).min(CPU_BURST) - spent;
    }

    fn spent(&self) -> bool {
        self.seconds <= 0.0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_lines: u32,
    pub max_bytes: usize,
    pub timeout: f64,
}

#[derive(Debug, Default, Clone)]
pub struct StageStats {
    pub events: u64,
    pub lines_joined: u64,
    pub timed_out: u64,
    pub cut: u64,
    pub json_parsed: u64,
    pub json_unparsed: u64,
    pub json_over_limit: u64,
    /// Lines a multiline pattern was matched against on their first bytes only (it gave up).
    pub pattern_gave_up: u64,
    /// Lines passed on unprocessed: the container's processing time was spent.
    pub over_cpu_budget: u64,
}

struct Open {
    text: Vec<u8>,
    time_nano: i64,
    lines: u32,
    state: usize,
    opened_at: f64,
}

#[derive(Default)]
struct Stream {
    open: Option<Open>,
    held: Vec<(Vec<u8>, i64, f64)>, // lines a hold rule keeps: bytes, time, arrival
}

pub struct Stage {
    rules: Option<Arc<Rules>>,
    limits: Limits,
    json: Option<JsonCaps>,
    streams: [Stream; 2],
    cpu: CpuAllowance,
    costly_at: Option<Instant>, // the last call found costly
    pub stats: StageStats,
}

fn stream_index(source: &Source) -> Option<usize> {
    match source {
        Source::Stdout => Some(0),
        Source::Stderr => Some(1),
        Source::Other(_) => None,
    }
}

fn source_of(index: usize) -> Source {
    if index == 0 {
        Source::Stdout
    } else {
        Source::Stderr
    }
}

impl Stage {
    pub fn new(rules: Option<Arc<Rules>>, limits: Limits, parse_json: bool) -> Stage {
        Stage {
            rules,
            limits,
            json: parse_json.then_some(structured::CAPS),
            streams: Default::default(),
            cpu: CpuAllowance::new(),
            costly_at: None,
            stats: StageStats::default(),
        }
    }

    /// The records of `input`, joined and parsed, appended to `out`.
    /// Past the container's processing time, lines go on as they are (open events first).
    pub fn process(&mut self, input: &Lines<impl AsRef<[u8]>>, now: f64, out: &mut Lines) {
        let mut started = Instant::now();
        let call_started = started;
        self.cpu.charge(0.0, started);
        let (mut lines, mut bytes) = (0u32, 0usize);
        for record in &input.records {
            let line = input.line(record);
            if lines >= CHECK_LINES || bytes >= CHECK_BYTES {
                let checked = Instant::now();
                self.cpu
                    .charge(checked.duration_since(started).as_secs_f64(), checked);
                (started, lines, bytes) = (checked, 0, 0);
            }
            if self.cpu.spent() {
                self.stats.over_cpu_budget += 1;
                if let Some(stream) = stream_index(&record.source) {
                    while self.streams[stream].open.is_some()
                        || !self.streams[stream].held.is_empty()
                    {
                        self.cut_stream(stream, out);
                    }
                }
                out.push(
                    record.source.clone(),
                    record.time_nano,
                    line,
                    record.partial.clone(),
                );
                continue;
            }
            lines += 1;
            bytes += line.len();
            match (stream_index(&record.source), &self.rules) {
                (Some(stream), Some(_)) if record.partial.is_none() => {
                    self.line(stream, line, record.time_nano, now, out)
                }
                (Some(stream), Some(_)) => {
                    self.close(stream, out);
                    self.single(record, line, out);
                }
                _ => self.single(record, line, out),
            }
        }
        let done = Instant::now();
        self.cpu
            .charge(done.duration_since(started).as_secs_f64(), done);
        let spent = done.duration_since(call_started).as_secs_f64();
        let input_bytes = input.arena.as_ref().len().max(1) as f64;
        if spent > COSTLY_MIN && spent * 1e9 > COSTLY_NS_PER_BYTE * input_bytes {
            self.costly_at = Some(done);
        }
    }

    /// Whether no call was costly (per byte) in the last `COSTLY_FOR` seconds: what its
    /// caller may run on its event loop, a small batch at a time.
    pub fn cheap(&self) -> bool {
        self.costly_at
            .is_none_or(|at| at.elapsed().as_secs_f64() > COSTLY_FOR)
    }

    /// Send what `stream` holds as it is, without matching the held lines again.
    fn cut_stream(&mut self, stream: usize, out: &mut Lines) {
        if let Some(open) = self.streams[stream].open.take() {
            self.emit(stream, open, None, out);
        }
        for (line, time_nano, _) in std::mem::take(&mut self.streams[stream].held) {
            out.push(source_of(stream), time_nano, &line, None);
        }
    }

    /// Send every event whose first line has waited `timeout` by `now`.
    pub fn flush_due(&mut self, now: f64, out: &mut Lines) {
        for stream in 0..2 {
            let due = self.streams[stream]
                .open
                .as_ref()
                .is_some_and(|open| open.opened_at + self.limits.timeout <= now);
            if due {
                self.stats.timed_out += 1;
                self.close(stream, out);
            }
        }
    }

    /// Send everything held (StopLogging, plugin shutdown).
    pub fn finish(&mut self, out: &mut Lines) {
        for stream in 0..2 {
            while self.streams[stream].open.is_some() {
                self.close(stream, out); // a held line sent back may begin another event
            }
        }
    }

    /// Send what is held now, marked cut (the memory budget has no room to hold it).
    pub fn cut_open(&mut self, out: &mut Lines) -> usize {
        let mut cut = 0;
        for stream in 0..2 {
            if let Some(open) = self.streams[stream].open.take() {
                cut += 1;
                self.emit(stream, open, Some(Cut::Memory), out);
                self.replay_held(stream, out);
            }
        }
        cut
    }

    /// When the oldest open event is due, on the caller's clock.
    pub fn next_deadline(&self) -> Option<f64> {
        self.streams
            .iter()
            .filter_map(|s| s.open.as_ref().map(|o| o.opened_at + self.limits.timeout))
            .reduce(f64::min)
    }

    /// Memory the open events hold (what the memory budget is charged).
    pub fn held_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|s| {
                s.open.as_ref().map_or(0, |o| o.text.capacity())
                    + s.held.iter().map(|h| h.0.capacity()).sum::<usize>()
            })
            .sum()
    }

    fn line(&mut self, stream: usize, line: &[u8], time_nano: i64, now: f64, out: &mut Lines) {
        let rules = self.rules.clone().expect("multiline rules");
        // A JSON object is an event of its own, never a part of another.
        let json = structured::braced(line) && structured::is_object(line);
        let text = String::from_utf8_lossy(line);
        if !json {
            if let Some(state) = self.streams[stream].open.as_ref().map(|o| o.state) {
                let gave_up = &mut self.stats.pattern_gave_up;
                if let Some(rule) = rules.states[state]
                    .iter()
                    .find(|r| r.matches(&text, gave_up))
                {
                    if !rule.hold {
                        self.join(stream, line, time_nano, rule.to, now, out);
                        if rules.states[rule.to].is_empty() {
                            self.close(stream, out);
                        }
                        return;
                    }
                    if self.streams[stream].held.len() < MAX_HELD {
                        self.streams[stream]
                            .held
                            .push((line.to_vec(), time_nano, now));
                        self.streams[stream].open.as_mut().expect("open").state = rule.to;
                        return;
                    }
                }
            }
        }
        self.close(stream, out);
        if self.streams[stream].open.is_some() {
            // A held line, sent back on its own, began an event: this line meets that one.
            return self.line(stream, line, time_nano, now, out);
        }
        if !json {
            let gave_up = &mut self.stats.pattern_gave_up;
            if let Some(rule) = rules.start.iter().find(|r| r.matches(&text, gave_up)) {
                self.streams[stream].open = Some(Open {
                    text: line.to_vec(),
                    time_nano,
                    lines: 1,
                    state: rule.to,
                    opened_at: now,
                });
                if rules.states[rule.to].is_empty() {
                    self.close(stream, out);
                }
                return;
            }
        }
        self.plain(stream, line, time_nano, out);
    }

    /// Add `line` (after any held lines) to the open event, cutting it first at a limit.
    fn join(
        &mut self,
        stream: usize,
        line: &[u8],
        time_nano: i64,
        to: usize,
        now: f64,
        out: &mut Lines,
    ) {
        let held = std::mem::take(&mut self.streams[stream].held);
        let open = self.streams[stream].open.as_mut().expect("open");
        let adding = held.len() as u32 + 1;
        let bytes: usize = held.iter().map(|h| h.0.len() + 1).sum::<usize>() + line.len() + 1;
        let cut = if open.lines + adding > self.limits.max_lines {
            Some(Cut::MaxLines)
        } else if open.text.len() + bytes > self.limits.max_bytes {
            Some(Cut::MaxBytes)
        } else {
            None
        };
        if let Some(cut) = cut {
            // The event goes now, marked; what follows carries on as the next event.
            let open = self.streams[stream].open.take().expect("open");
            self.stats.cut += 1;
            self.emit(stream, open, Some(cut), out);
            let mut parts =
                held.into_iter()
                    .chain(std::iter::once((line.to_vec(), time_nano, now)));
            let (text, time_nano, opened_at) = parts.next().expect("the line itself");
            let mut next = Open {
                text,
                time_nano,
                lines: 1,
                state: to,
                opened_at,
            };
            for (part, _, _) in parts {
                next.text.push(b'\n');
                next.text.extend_from_slice(&part);
                next.lines += 1;
            }
            self.streams[stream].open = Some(next);
            return;
        }
        open.text.reserve(bytes);
        for (part, _, _) in held {
            open.text.push(b'\n');
            open.text.extend_from_slice(&part);
        }
        open.text.push(b'\n');
        open.text.extend_from_slice(line);
        open.lines += adding;
        open.state = to;
    }

    /// Send the open event of `stream`, if any, then what its hold rules kept.
    fn close(&mut self, stream: usize, out: &mut Lines) {
        if let Some(open) = self.streams[stream].open.take() {
            self.emit(stream, open, None, out);
        }
        self.replay_held(stream, out);
    }

    /// Held lines did not join: each is a line of its own again (it may begin an event).
    fn replay_held(&mut self, stream: usize, out: &mut Lines) {
        for (line, time_nano, arrived) in std::mem::take(&mut self.streams[stream].held) {
            self.line(stream, &line, time_nano, arrived, out);
        }
    }

    fn emit(&mut self, stream: usize, open: Open, cut: Option<Cut>, out: &mut Lines) {
        if open.lines == 1 && cut.is_none() {
            return self.plain(stream, &open.text, open.time_nano, out);
        }
        self.stats.events += 1;
        self.stats.lines_joined += u64::from(open.lines);
        out.push_owned(source_of(stream), open.time_nano, open.text, None);
        out.records.last_mut().expect("pushed").event = Some(Box::new(Event {
            lines: open.lines,
            cut,
            fields: None,
        }));
    }

    fn plain(&mut self, stream: usize, line: &[u8], time_nano: i64, out: &mut Lines) {
        out.push(source_of(stream), time_nano, line, None);
        self.parse_last(out);
    }

    fn single(&mut self, record: &Record, line: &[u8], out: &mut Lines) {
        out.push(
            record.source.clone(),
            record.time_nano,
            line,
            record.partial.clone(),
        );
        if record.partial.is_none() {
            self.parse_last(out);
        }
    }

    /// `parse=json` on the record just pushed.
    fn parse_last(&mut self, out: &mut Lines) {
        let Some(caps) = self.json else { return };
        let record = out.records.last().expect("pushed");
        match structured::parse(out.line(record), caps) {
            Parsed::Fields(fields) => {
                self.stats.json_parsed += 1;
                out.records.last_mut().expect("pushed").event = Some(Box::new(Event {
                    lines: 1,
                    cut: None,
                    fields: Some(fields),
                }));
            }
            Parsed::NotAnObject => self.stats.json_unparsed += 1,
            Parsed::OverLimit => self.stats.json_over_limit += 1,
        }
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;

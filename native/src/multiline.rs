//! Multiline joining, a processing step: a stack trace printed over many lines becomes one
//! record, each stream (stdout, stderr) on its own.
//!
//! Rules (`Rules`) are a small state machine held as data: a preset's table
//! (`presets.rs`) or a custom start/continue pattern. A line either continues the open
//! event of its stream, or ends it and may begin the next. Limits (lines, bytes) cut an
//! event with a marker; the caller's clock (`now`, seconds) sends an event whose first line
//! has waited `timeout`. A JSON object line and a piece of a line cut by Docker's size cap
//! always go alone. Nothing is dropped: every line leaves in exactly one record.

use std::sync::Arc;

use crate::rules::Rules;
use crate::step::{Budget, Counter, Step};
use crate::structured;
use logdriver_lines::{Cut, Event, Lines, Source};

/// Lines a `hold` rule may keep waiting for the line that decides them.
const MAX_HELD: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_lines: u32,
    pub max_bytes: usize,
    pub timeout: f64,
}

pub const COUNTERS: &[Counter] = &[
    ("multiline_events", "events of more than one line sent"),
    ("multiline_lines", "lines in those events"),
    (
        "multiline_timed_out",
        "open events sent because their timeout passed",
    ),
    (
        "multiline_cut",
        "events cut by multiline-max-lines or -max-bytes (marked)",
    ),
    (
        "multiline_cut_by_budget",
        "open events sent early: the memory budget was full (marked)",
    ),
    (
        "multiline_pattern_gave_up",
        "lines a too-costly pattern was matched on their first bytes only",
    ),
];

#[derive(Debug, Default, Clone)]
struct Stats {
    events: u64,
    lines_joined: u64,
    timed_out: u64,
    cut: u64,
    cut_by_budget: u64,
    pattern_gave_up: u64,
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

pub struct Multiline {
    rules: Arc<Rules>,
    limits: Limits,
    streams: [Stream; 2],
    stats: Stats,
}

impl Multiline {
    pub fn new(rules: Arc<Rules>, limits: Limits) -> Multiline {
        Multiline {
            rules,
            limits,
            streams: Default::default(),
            stats: Stats::default(),
        }
    }
}

impl Step for Multiline {
    fn process(&mut self, input: Lines, now: f64, budget: &mut Budget) -> Lines {
        let mut out = Lines {
            arena: Vec::with_capacity(input.arena.len()),
            records: Vec::with_capacity(input.records.len()),
        };
        for record in &input.records {
            let line = input.line(record);
            let stream = stream_index(&record.source);
            if budget.spent(line.len()) {
                if let Some(stream) = stream {
                    while self.streams[stream].open.is_some()
                        || !self.streams[stream].held.is_empty()
                    {
                        self.cut_stream(stream, &mut out);
                    }
                }
                out.push_from(&input, record);
                continue;
            }
            match stream {
                Some(stream) if record.partial.is_none() => {
                    self.line(stream, line, record.time_nano, now, &mut out)
                }
                Some(stream) => {
                    self.close(stream, &mut out);
                    out.push_from(&input, record);
                }
                None => out.push_from(&input, record),
            }
        }
        out
    }

    fn flush_due(&mut self, now: f64, out: &mut Lines) {
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

    fn finish(&mut self, out: &mut Lines) {
        for stream in 0..2 {
            while self.streams[stream].open.is_some() {
                self.close(stream, out); // a held line sent back may begin another event
            }
        }
    }

    fn cut_open(&mut self, out: &mut Lines) -> usize {
        let mut cut = 0;
        for stream in 0..2 {
            if let Some(open) = self.streams[stream].open.take() {
                cut += 1;
                self.emit(stream, open, Some(Cut::Memory), out);
                self.replay_held(stream, out);
            }
        }
        self.stats.cut_by_budget += cut as u64;
        cut
    }

    fn next_deadline(&self) -> Option<f64> {
        self.streams
            .iter()
            .filter_map(|s| s.open.as_ref().map(|o| o.opened_at + self.limits.timeout))
            .reduce(f64::min)
    }

    fn held_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|s| {
                s.open.as_ref().map_or(0, |o| o.text.capacity())
                    + s.held.iter().map(|h| h.0.capacity()).sum::<usize>()
            })
            .sum()
    }

    fn counters(&self) -> &'static [Counter] {
        COUNTERS
    }

    fn values(&self) -> Vec<u64> {
        let s = &self.stats;
        vec![
            s.events,
            s.lines_joined,
            s.timed_out,
            s.cut,
            s.cut_by_budget,
            s.pattern_gave_up,
        ]
    }
}

impl Multiline {
    /// Send what `stream` holds as it is, without matching the held lines again.
    fn cut_stream(&mut self, stream: usize, out: &mut Lines) {
        if let Some(open) = self.streams[stream].open.take() {
            self.emit(stream, open, None, out);
        }
        for (line, time_nano, _) in std::mem::take(&mut self.streams[stream].held) {
            out.push(source_of(stream), time_nano, &line, None);
        }
    }

    fn line(&mut self, stream: usize, line: &[u8], time_nano: i64, now: f64, out: &mut Lines) {
        let rules = Arc::clone(&self.rules);
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
        out.push(source_of(stream), time_nano, line, None);
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
            return out.push_owned(source_of(stream), open.time_nano, open.text, None);
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
}

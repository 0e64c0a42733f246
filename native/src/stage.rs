//! The processing stage between the decoder and the sinks: one container's steps
//! (`step.rs`) in their order, and the processing time they share.
//!
//! Order (`Stage::of`): redaction (on each line as written; with `redact-store`, the
//! default, apart from the steps, through `redact`, so that the caller stores what it
//! returns), then multiline joining, then `parse=json` (a joined event is never
//! parsed; a JSON object line is never joined), then keep/drop (it sees parsed levels and
//! whole events), then the rate limit (what keep/drop dropped costs it nothing; its markers
//! go through the steps after it). The `docker logs` store takes the decoded lines before
//! the other steps: `docker logs` shows what the container wrote, redacted.
//!
//! A record any step sends on goes through every later step, in `process` and when a step
//! gives up what it holds (a timeout, the end of the stream, the memory budget).

use std::sync::Arc;
use std::time::Instant;

use crate::filter::Filter;
pub use crate::multiline::Limits;
use crate::multiline::Multiline;
use crate::parse_json::ParseJson;
use crate::rate_limit::RateLimit;
use crate::redact::Redact;
pub use crate::rules::{compile, Pattern, Rules, FALLBACK_PREFIX, MAX_PATTERN};
use crate::step::{Budget, Counter, Step, BUDGET_COUNTERS};
pub use crate::step::{CPU_BURST, CPU_SHARE};
use crate::structured;
use logdriver_lines::Lines;

/// A call costlier than this per byte (and than `COSTLY_MIN` in all) marks the stage costly
/// for `COSTLY_FOR` seconds: a normal pattern or JSON line costs a few ns a byte, the
/// costliest pattern that compiles about 80. The caller runs a costly stage off its loop.
const COSTLY_NS_PER_BYTE: f64 = 40.0;
const COSTLY_MIN: f64 = 200e-6;
const COSTLY_FOR: f64 = 10.0;

/// Every step kind's counters, in the stage's order, then the stage's own: the table the
/// metrics and the reference are made from.
pub fn counter_table() -> Vec<Counter> {
    [
        crate::redact::COUNTERS,
        crate::multiline::COUNTERS,
        crate::parse_json::COUNTERS,
        crate::filter::COUNTERS,
        crate::rate_limit::COUNTERS,
        BUDGET_COUNTERS,
    ]
    .concat()
}

pub struct Stage {
    redactor: Option<Redact>, // redact-store: the caller runs it before the store
    steps: Vec<Box<dyn Step>>,
    budget: Budget,
    costly_at: Option<Instant>, // the last call found costly
}

/// The steps a container's options ask for, each made from its options.
#[derive(Default)]
pub struct Steps {
    pub redact: Option<Redact>,
    /// Redaction apart, before the store (`Stage::redact`), rather than as the first step.
    pub redact_store: bool,
    pub multiline: Option<Multiline>,
    pub parse_json: bool,
    pub filter: Option<Filter>,
    pub rate_limit: Option<RateLimit>,
}

impl Stage {
    /// The steps, in the stage's order.
    pub fn of(steps: Steps) -> Stage {
        let mut ordered: Vec<Box<dyn Step>> = Vec::new();
        let mut redactor = None;
        match steps.redact {
            Some(redact) if steps.redact_store => redactor = Some(redact),
            Some(redact) => ordered.push(Box::new(redact)),
            None => {}
        }
        if let Some(multiline) = steps.multiline {
            ordered.push(Box::new(multiline));
        }
        if steps.parse_json {
            ordered.push(Box::new(ParseJson::new(structured::CAPS)));
        }
        if let Some(filter) = steps.filter {
            ordered.push(Box::new(filter));
        }
        if let Some(rate_limit) = steps.rate_limit {
            ordered.push(Box::new(rate_limit));
        }
        Stage {
            redactor,
            steps: ordered,
            budget: Budget::default(),
            costly_at: None,
        }
    }

    /// Multiline joining and `parse=json` alone.
    pub fn new(rules: Option<Arc<Rules>>, limits: Limits, parse_json: bool) -> Stage {
        Stage::of(Steps {
            multiline: rules.map(|rules| Multiline::new(rules, limits)),
            parse_json,
            ..Steps::default()
        })
    }

    /// `input` redacted, for the store and then `process` (with `redact-store`); `input`
    /// itself otherwise.
    pub fn redact(&mut self, input: &Lines, now: f64) -> Lines {
        let Some(redactor) = &mut self.redactor else {
            return input.clone();
        };
        self.budget.begin();
        let out = redactor.process(input.clone(), now, &mut self.budget);
        self.budget.end();
        out
    }

    /// Whether `redact` redacts (the caller stores its result rather than the raw frames).
    pub fn redacts_store(&self) -> bool {
        self.redactor.is_some()
    }

    /// The records of `input` through every step.
    pub fn process(&mut self, input: &Lines, now: f64) -> Lines {
        let started = Instant::now();
        self.budget.begin();
        let out = self.run_from(0, input.clone(), now);
        self.budget.end();
        let spent = started.elapsed().as_secs_f64();
        let input_bytes = input.arena.len().max(1) as f64;
        if spent > COSTLY_MIN && spent * 1e9 > COSTLY_NS_PER_BYTE * input_bytes {
            self.costly_at = Some(Instant::now());
        }
        out
    }

    /// `lines` through the steps from `first` on.
    fn run_from(&mut self, first: usize, mut lines: Lines, now: f64) -> Lines {
        for step in &mut self.steps[first..] {
            if lines.records.is_empty() {
                break;
            }
            lines = step.process(lines, now, &mut self.budget);
        }
        lines
    }

    /// What each step gives up (`give_up`), through the steps after it, appended in step order.
    fn give_up(
        &mut self,
        now: f64,
        mut give_up: impl FnMut(&mut dyn Step, &mut Lines) -> usize,
    ) -> (Lines, usize) {
        let mut out = Lines::default();
        let mut count = 0;
        for index in 0..self.steps.len() {
            let mut given = Lines::default();
            count += give_up(self.steps[index].as_mut(), &mut given);
            if given.records.is_empty() {
                continue;
            }
            self.budget.begin();
            let passed = self.run_from(index + 1, given, now);
            self.budget.end();
            for record in &passed.records {
                out.push_from(&passed, record);
            }
        }
        (out, count)
    }

    /// Whether no call was costly (per byte) in the last `COSTLY_FOR` seconds: what its
    /// caller may run on its event loop, a small batch at a time.
    pub fn cheap(&self) -> bool {
        self.costly_at
            .is_none_or(|at| at.elapsed().as_secs_f64() > COSTLY_FOR)
    }

    /// What has waited its timeout by `now`.
    pub fn flush_due(&mut self, now: f64) -> Lines {
        self.give_up(now, |step, out| {
            step.flush_due(now, out);
            0
        })
        .0
    }

    /// Everything held (StopLogging, plugin shutdown).
    pub fn finish(&mut self, now: f64) -> Lines {
        self.give_up(now, |step, out| {
            step.finish(out);
            0
        })
        .0
    }

    /// What is held now, marked cut (the memory budget has no room to hold it); and how
    /// many records were cut.
    pub fn cut_open(&mut self, now: f64) -> (Lines, usize) {
        self.give_up(now, |step, out| step.cut_open(out))
    }

    /// When the oldest thing held is due, on the caller's clock.
    pub fn next_deadline(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter_map(|step| step.next_deadline())
            .reduce(f64::min)
    }

    /// Whether every step is light (`Step::light`): any read may be processed on the
    /// caller's loop, the way it decodes it.
    pub fn light(&self) -> bool {
        self.redactor.is_none() && self.steps.iter().all(|step| step.light())
    }

    /// Whether a step holds lines back (a `block` rate limit): the caller should stop
    /// reading the container's FIFO until it does not.
    pub fn holds_back(&self) -> bool {
        self.steps.iter().any(|step| step.holds_back())
    }

    /// Memory the steps hold (what the memory budget is charged).
    pub fn held_bytes(&self) -> usize {
        self.steps.iter().map(|step| step.held_bytes()).sum()
    }

    /// Every counter of this stage's steps, then the stage's own, as (name, value).
    pub fn statistics(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = Vec::new();
        let steps = self.redactor.iter().map(|r| r as &dyn Step);
        for step in steps.chain(self.steps.iter().map(|s| s.as_ref())) {
            out.extend(step.counters().iter().map(|c| c.0).zip(step.values()));
        }
        out.push((BUDGET_COUNTERS[0].0, self.budget.skipped));
        out
    }
}

#[cfg(test)]
#[path = "stage_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "policy_tests.rs"]
mod policy_tests;

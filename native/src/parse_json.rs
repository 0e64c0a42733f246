//! `parse=json`, a processing step: a line that is one JSON object is shipped as fields
//! (`structured.rs` finds them). It changes records in place: nothing is copied.
//!
//! A record a step before made into an event (joined lines, a cut) and a piece of a line
//! cut by Docker's size cap are left as they are.

use crate::step::{Budget, Counter, Step};
use crate::structured::{self, JsonCaps, Parsed};
use logdriver_lines::{Event, Lines};

pub const COUNTERS: &[Counter] = &[
    ("json_parsed", "lines shipped as fields"),
    (
        "json_unparsed",
        "lines that were not a JSON object, shipped unchanged",
    ),
    (
        "json_over_limit",
        "JSON objects over the size, depth or key caps, shipped unchanged",
    ),
];

pub struct ParseJson {
    caps: JsonCaps,
    parsed: u64,
    unparsed: u64,
    over_limit: u64,
}

impl ParseJson {
    pub fn new(caps: JsonCaps) -> ParseJson {
        ParseJson {
            caps,
            parsed: 0,
            unparsed: 0,
            over_limit: 0,
        }
    }
}

impl Step for ParseJson {
    fn process(&mut self, mut input: Lines, _now: f64, budget: &mut Budget) -> Lines {
        let caps = self.caps;
        for record in &mut input.records {
            if record.partial.is_some() || record.event.is_some() {
                continue;
            }
            let line = &input.arena[record.start..record.end];
            if budget.spent(line.len()) {
                continue;
            }
            match structured::parse(line, caps) {
                Parsed::Fields(fields) => {
                    self.parsed += 1;
                    record.event = Some(Box::new(Event {
                        lines: 1,
                        cut: None,
                        fields: Some(fields),
                    }));
                }
                Parsed::NotAnObject => self.unparsed += 1,
                Parsed::OverLimit => self.over_limit += 1,
            }
        }
        input
    }

    fn counters(&self) -> &'static [Counter] {
        COUNTERS
    }

    fn values(&self) -> Vec<u64> {
        vec![self.parsed, self.unparsed, self.over_limit]
    }
}

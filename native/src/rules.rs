//! Multiline rules: a small state machine held as data, compiled from a preset's table
//! (`presets.rs`) or from a container's custom start/continue patterns.

use std::sync::{Arc, OnceLock};

use regex::{Regex, RegexBuilder};

use crate::presets::{RuleDef, PRESETS};

/// Bounds on a custom pattern: its text, and its compiled program (RE2 has the same).
pub const MAX_PATTERN: usize = 4096;
const COMPILED_LIMIT: usize = 1 << 20;

pub(crate) struct Rule {
    pattern: Option<Regex>,
    negate: bool,
    pub(crate) to: usize,
    pub(crate) hold: bool,
}

impl Rule {
    pub(crate) fn matches(&self, line: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.is_match(line)) != self.negate
    }
}

/// `start` rules begin an event; `states[s]` continue one in state `s` (none: it ends).
pub struct Rules {
    pub(crate) start: Vec<Rule>,
    pub(crate) states: Vec<Vec<Rule>>,
}

pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} characters"));
    }
    RegexBuilder::new(pattern)
        .size_limit(COMPILED_LIMIT)
        .dfa_size_limit(COMPILED_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

impl Rules {
    fn from_table(table: &[RuleDef]) -> Rules {
        let mut names = vec!["start"];
        for def in table {
            for name in [def.from, def.to] {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let index = |name: &str| names.iter().position(|n| *n == name).expect("named");
        let mut start = Vec::new();
        let mut states: Vec<Vec<Rule>> = names.iter().map(|_| Vec::new()).collect();
        for def in table {
            let rule = Rule {
                pattern: (!def.pattern.is_empty())
                    .then(|| compile(def.pattern).expect("a preset's pattern compiles")),
                negate: false,
                to: index(def.to),
                hold: def.hold,
            };
            match def.from {
                "start" => start.push(rule),
                from => states[index(from)].push(rule),
            }
        }
        Rules { start, states }
    }

    /// A preset's rules, compiled once per process.
    pub fn preset(name: &str) -> Option<Arc<Rules>> {
        static COMPILED: OnceLock<Vec<(&'static str, Arc<Rules>)>> = OnceLock::new();
        let compiled = COMPILED.get_or_init(|| {
            PRESETS
                .iter()
                .map(|(name, table)| (*name, Arc::new(Rules::from_table(table))))
                .collect()
        });
        compiled
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r.clone())
    }

    /// `multiline-start` (first lines of events) and/or `multiline-continue` (later lines).
    /// With only a start pattern, every other line continues; with only a continue
    /// pattern, any line may begin an event.
    pub fn custom(start: Option<&str>, cont: Option<&str>) -> Result<Rules, String> {
        let start = start
            .map(compile)
            .transpose()
            .map_err(|e| format!("multiline-start: {e}"))?;
        let cont = cont
            .map(compile)
            .transpose()
            .map_err(|e| format!("multiline-continue: {e}"))?;
        let continuing = match (&start, cont) {
            (_, Some(cont)) => Rule {
                pattern: Some(cont),
                negate: false,
                to: 1,
                hold: false,
            },
            (Some(start), None) => Rule {
                pattern: Some(start.clone()),
                negate: true,
                to: 1,
                hold: false,
            },
            (None, None) => return Err("neither pattern given".into()),
        };
        Ok(Rules {
            start: vec![Rule {
                pattern: start,
                negate: false,
                to: 1,
                hold: false,
            }],
            states: vec![Vec::new(), vec![continuing]],
        })
    }
}

//! Multiline rules: a small state machine held as data, compiled from a preset's table
//! (`presets.rs`) or from a container's custom start/continue patterns.

use std::sync::{Arc, Mutex, OnceLock};

use regex::{Regex, RegexBuilder};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::Input;

use crate::presets::{RuleDef, PRESETS};

/// Bounds on a custom pattern: its text, and its compiled program (RE2 has the same).
pub const MAX_PATTERN: usize = 4096;
const COMPILED_LIMIT: usize = 256 << 10;
/// Memory of a pattern's lazy DFA, and how badly it may use it before it gives up:
/// past that, building DFA states would cost more per byte than matching is worth.
const DFA_CACHE: usize = 256 << 10;
const DFA_CLEARS: usize = 2;
const DFA_BYTES_PER_STATE: usize = 16;
/// Bytes of a line the fallback matcher reads when the lazy DFA gave up.
pub const FALLBACK_PREFIX: usize = 256;

/// A compiled pattern whose cost per byte of line is bounded by a constant of ours, not
/// by the pattern: a lazy DFA (linear, each state built once) that gives up when the
/// pattern makes it build states faster than it reads bytes (`[ab]{0,2500}X|...` cost
/// 55 s per MiB of line through the regex crate's fallbacks). A line it gave up on is
/// matched on its first `FALLBACK_PREFIX` bytes only, and counted.
pub struct Pattern {
    dfa: DFA,
    cache: Mutex<Cache>,
    fallback: Regex,
}

/// What matching a line found, and whether it took the bounded fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub is_match: bool,
    pub gave_up: bool,
}

impl Pattern {
    pub fn is_match(&self, line: &str) -> bool {
        self.find(line).is_match
    }

    pub fn find(&self, line: &str) -> Matched {
        self.find_bytes(line.as_bytes())
    }

    /// `find` on a line's bytes: the lazy DFA reads bytes (no UTF-8 check of the line);
    /// only the fallback, on a line it gave up on, reads its prefix as text.
    pub fn find_bytes(&self, line: &[u8]) -> Matched {
        let input = Input::new(line).earliest(true);
        let found = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            self.dfa.try_search_fwd(&mut cache, &input)
        };
        match found {
            Ok(found) => Matched {
                is_match: found.is_some(),
                gave_up: false,
            },
            Err(_) => {
                let prefix = String::from_utf8_lossy(&line[..line.len().min(FALLBACK_PREFIX)]);
                Matched {
                    is_match: self.fallback.is_match(&prefix),
                    gave_up: true,
                }
            }
        }
    }
}

pub(crate) struct Rule {
    pattern: Option<Pattern>,
    negate: bool,
    pub(crate) to: usize,
    pub(crate) hold: bool,
}

impl Rule {
    /// Whether the rule applies to `line`; `gave_up` counts lines matched on their prefix only.
    pub(crate) fn matches(&self, line: &str, gave_up: &mut u64) -> bool {
        let matched = match &self.pattern {
            None => true,
            Some(pattern) => {
                let found = pattern.find(line);
                *gave_up += u64::from(found.gave_up);
                found.is_match
            }
        };
        matched != self.negate
    }
}

/// `start` rules begin an event; `states[s]` continue one in state `s` (none: it ends).
pub struct Rules {
    pub(crate) start: Vec<Rule>,
    pub(crate) states: Vec<Vec<Rule>>,
}

pub fn compile(pattern: &str) -> Result<Pattern, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} characters"));
    }
    let fallback = RegexBuilder::new(pattern)
        .size_limit(COMPILED_LIMIT)
        .dfa_size_limit(COMPILED_LIMIT)
        .build()
        .map_err(|e| e.to_string())?;
    let dfa = DFA::builder()
        .configure(
            DFA::config()
                .cache_capacity(DFA_CACHE)
                .skip_cache_capacity_check(true) // a pattern too big for it gives up at once
                .minimum_cache_clear_count(Some(DFA_CLEARS))
                .minimum_bytes_per_state(Some(DFA_BYTES_PER_STATE))
                .unicode_word_boundary(true), // \b on ASCII; a line with more gives up
        )
        .syntax(syntax::Config::new())
        .thompson(thompson::Config::new().nfa_size_limit(Some(COMPILED_LIMIT)))
        .build(pattern)
        .map_err(|e| e.to_string())?;
    let cache = Mutex::new(dfa.create_cache());
    Ok(Pattern {
        dfa,
        cache,
        fallback,
    })
}

/// A second copy of a compiled pattern (its own DFA cache); it compiled once, so it does again.
fn compile_again(pattern: &Pattern) -> Pattern {
    compile(pattern.fallback.as_str()).expect("compiled before")
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
                pattern: Some(compile_again(start)),
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

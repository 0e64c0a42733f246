//! Keep/drop, a processing step: `drop-lines` (a matching line is dropped), `keep-lines`
//! (only matching lines pass) and `min-level` (a line whose level is below it is dropped).
//! Each dropped line is counted by the rule that dropped it; no marker is sent (these are
//! the container's own choices, not a limit it ran into).
//!
//! A line's level is `parse=json`'s, when the line was a JSON object with a level key;
//! else a level word among its first four (`ERROR`, `[warn]`, `level=info`, `Info:`,
//! after a timestamp or not; in lower case past the first word only when set off). A line with no level it can read passes: what it cannot classify it
//! does not throw away.

use crate::rules::Pattern;
use crate::step::{retain, Budget, Counter, Step};
use logdriver_lines::{Event, Lines, Text, LEVEL_NAMES};

pub const COUNTERS: &[Counter] = &[
    (
        "dropped_by_drop_lines",
        "lines that matched drop-lines, dropped",
    ),
    (
        "dropped_by_keep_lines",
        "lines that did not match keep-lines, dropped",
    ),
    ("dropped_below_min_level", "lines below min-level, dropped"),
    (
        "filter_pattern_gave_up",
        "lines a too-costly drop-lines or keep-lines pattern was matched on their first bytes only",
    ),
];

/// How many leading words, within how many leading bytes, are looked at for a level word.
const LEVEL_WORDS: usize = 4;
const LEVEL_BYTES: usize = 128;

pub struct Filter {
    drop_lines: Option<Pattern>,
    keep_lines: Option<Pattern>,
    min_level: Option<u8>, // an index into LEVEL_NAMES
    dropped_by_drop: u64,
    dropped_by_keep: u64,
    dropped_by_level: u64,
    gave_up: u64,
}

/// A level name, or a common spelling of one, as an index into `LEVEL_NAMES`.
pub fn level_index(word: &[u8]) -> Option<u8> {
    if !(3..=11).contains(&word.len()) || !word[0].is_ascii_alphabetic() {
        return None; // most words: no allocation, no comparison
    }
    let mut lower = [0u8; 11];
    for (to, from) in lower.iter_mut().zip(word) {
        *to = from.to_ascii_lowercase();
    }
    Some(match &lower[..word.len()] {
        b"trace" | b"trc" => 0,
        b"debug" | b"dbg" => 1,
        b"info" | b"inf" | b"information" | b"notice" => 2,
        b"warn" | b"wrn" | b"warning" => 3,
        b"error" | b"err" | b"eror" => 4,
        b"fatal" | b"ftl" | b"critical" | b"crit" | b"panic" | b"alert" | b"emerg"
        | b"emergency" => 5,
        _ => return None,
    })
}

/// The level of a line: its parsed JSON level, else a level word among its first words.
pub fn line_level(line: &[u8], event: Option<&Event>) -> Option<u8> {
    if let Some(level) = event.and_then(|e| e.fields.as_ref()).and_then(|f| f.level) {
        return match level {
            Text::Level(index) => Some(index),
            Text::Raw(span) => level_index(trim_punctuation(span.of(line))),
        };
    }
    line[..line.len().min(LEVEL_BYTES)]
        .split(|b| b.is_ascii_whitespace())
        .filter(|word| !word.is_empty())
        .take(LEVEL_WORDS)
        .enumerate()
        .find_map(|(index, word)| {
            let keyed = word
                .strip_prefix(b"level=")
                .or_else(|| word.strip_prefix(b"lvl="));
            let bare = trim_punctuation(keyed.unwrap_or(word));
            // Past the first word, a level word in prose ("the error was handled") is not
            // one: it must be keyed, set off ([warn], INFO:) or in capitals.
            let marked = index == 0
                || keyed.is_some()
                || bare.len() != word.len()
                || bare.iter().all(|b| !b.is_ascii_lowercase());
            marked.then(|| level_index(bare)).flatten()
        })
}

/// `word` without the brackets, quotes and colons around it: `[WARN]`, `"error",`, `INFO:`.
fn trim_punctuation(word: &[u8]) -> &[u8] {
    let punctuation = |b: &u8| {
        matches!(
            b,
            b'[' | b']' | b'(' | b')' | b'"' | b'\'' | b':' | b',' | b'<' | b'>'
        )
    };
    let start = word
        .iter()
        .position(|b| !punctuation(b))
        .unwrap_or(word.len());
    let end = word
        .iter()
        .rposition(|b| !punctuation(b))
        .map_or(start, |i| i + 1);
    &word[start..end]
}

impl Filter {
    pub fn new(
        drop_lines: Option<Pattern>,
        keep_lines: Option<Pattern>,
        min_level: Option<u8>,
    ) -> Filter {
        Filter {
            drop_lines,
            keep_lines,
            min_level,
            dropped_by_drop: 0,
            dropped_by_keep: 0,
            dropped_by_level: 0,
            gave_up: 0,
        }
    }

    fn matches(pattern: &Pattern, line: &[u8], gave_up: &mut u64) -> bool {
        let found = pattern.find_bytes(line);
        *gave_up += u64::from(found.gave_up);
        found.is_match
    }

    /// Whether `line` passes; a line that does not is counted by the rule that dropped it.
    fn passes(&mut self, line: &[u8], event: Option<&Event>) -> bool {
        if let Some(min) = self.min_level {
            if line_level(line, event).is_some_and(|level| level < min) {
                self.dropped_by_level += 1;
                return false;
            }
        }
        if let Some(pattern) = &self.drop_lines {
            if Self::matches(pattern, line, &mut self.gave_up) {
                self.dropped_by_drop += 1;
                return false;
            }
        }
        if let Some(pattern) = &self.keep_lines {
            if !Self::matches(pattern, line, &mut self.gave_up) {
                self.dropped_by_keep += 1;
                return false;
            }
        }
        true
    }
}

impl Step for Filter {
    fn process(&mut self, mut input: Lines, _now: f64, budget: &mut Budget) -> Lines {
        let mut keep = Vec::with_capacity(input.records.len());
        for record in &input.records {
            let line = &input.arena[record.start..record.end];
            // A line past the processing time goes on unfiltered (counted by the budget).
            keep.push(budget.spent(line.len()) || self.passes(line, record.event.as_deref()));
        }
        retain(&mut input, &keep);
        input
    }

    fn light(&self) -> bool {
        self.drop_lines.is_none() && self.keep_lines.is_none() // min-level reads 128 bytes at most
    }

    fn counters(&self) -> &'static [Counter] {
        COUNTERS
    }

    fn values(&self) -> Vec<u64> {
        vec![
            self.dropped_by_drop,
            self.dropped_by_keep,
            self.dropped_by_level,
            self.gave_up,
        ]
    }
}

/// `LEVEL_NAMES`' index of a `min-level` value.
pub fn min_level_index(name: &str) -> Option<u8> {
    LEVEL_NAMES.iter().position(|n| *n == name).map(|i| i as u8)
}

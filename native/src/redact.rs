//! Redaction, a processing step: secrets and personal data are masked (or hashed, or their
//! line dropped) before the line leaves the host, and, by default, before the `docker logs`
//! store keeps it. It runs first, on each line as the container wrote it.
//!
//! Presets (`redact=`) are our own patterns, each naming the value it masks: a capture
//! group where the pattern also matches its context (`password=` and what follows), the
//! whole match otherwise. A line is first tested against every active pattern at once (one
//! automaton); only a line that matches is searched rule by rule. Card numbers must pass
//! the Luhn check. A private key printed over several lines is masked from its BEGIN line
//! through its END line, per stream, `MAX_KEY_LINES` at most.
//!
//! A container's own `redact-pattern` is matched within its processing-time allowance and
//! by the bounded matcher of multiline patterns; a line it could not check (the matcher
//! gave up, or the time was spent) is dropped and counted: redaction fails closed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use hmac::{Hmac, Mac};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use sha2::Sha256;

use crate::rules::Pattern;
use crate::step::{retain, Budget, Counter, Step};
use logdriver_lines::{Lines, Source};

/// What replaces a masked value.
pub const MASK: &[u8] = b"[REDACTED]";
/// Hex digits of the HMAC a hashed value becomes (64 bits: joinable, short).
const HASH_HEX: usize = 16;
const HEX: &[u8; 16] = b"0123456789abcdef";
/// The longest replacement (`[HMAC:` + `HASH_HEX` digits + `]`).
const HASHED_LEN: usize = 7 + HASH_HEX;
/// A redacted line is at most twice its length and this much.
pub const MAX_GROWTH: usize = 64;
/// Lines of a private key block masked at most, when its END line never comes.
pub const MAX_KEY_LINES: u32 = 200;

/// Each preset: its name and patterns. Group 1, when a pattern has one, is the value.
pub const PRESETS: &[(&str, &[&str])] = &[
    (
        "credentials",
        &[
            r#"(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)["']?\s*[:=]\s*["']?([^\s"',;&]+)"#,
            r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@",
            r#"(?i)\bauthorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token)\s+)?([^\s"',;]+)"#,
            r"\b[Bb]earer\s+([A-Za-z0-9._~+/-]{16,}=*)",
        ],
    ),
    (
        "keys",
        &[
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
            r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})"#,
            r"\bAIza[0-9A-Za-z_-]{35}",
            r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
            r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
            r"\bglpat-[A-Za-z0-9_-]{20,}",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
        ],
    ),
    (
        "jwt",
        &[r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"],
    ),
    ("cards", &[r"\b\d(?:[ -]?\d){12,18}\b"]),
    (
        "emails",
        &[r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"],
    ),
    (
        "ips",
        &[
            r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
            r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b",
            r"\b(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}\b",
        ],
    ),
];

const KEYS: usize = 1; // the preset whose hits count private key blocks
const CARDS: usize = 3;
const BY_PATTERN: usize = PRESETS.len();
const DROPPED: usize = BY_PATTERN + 1;
const UNCHECKED: usize = BY_PATTERN + 2;

pub const COUNTERS: &[Counter] = &[
    ("redacted_credentials", "values redact=credentials masked"),
    ("redacted_keys", "keys and tokens redact=keys masked (a private key block counts once)"),
    ("redacted_jwt", "JSON web tokens redact=jwt masked"),
    ("redacted_cards", "card numbers (Luhn-checked) redact=cards masked"),
    ("redacted_emails", "e-mail addresses redact=emails masked"),
    ("redacted_ips", "IP addresses redact=ips masked"),
    ("redacted_by_pattern", "matches of redact-pattern masked"),
    (
        "redact_dropped_lines",
        "lines dropped by redact-mode=drop-line because something in them was to be redacted",
    ),
    (
        "redact_unchecked_dropped",
        "lines dropped because redact-pattern could not check them (too costly, or the processing time was spent)",
    ),
];

/// What a redacted value becomes.
pub enum Mode {
    /// `[REDACTED]`.
    Mask,
    /// A keyed HMAC-SHA256 of the value: equal values give equal text.
    Hash(Hmac<Sha256>),
    DropLine,
}

impl Mode {
    /// `Hash` with this key (any length; the plugin's is 32 bytes).
    pub fn hash(key: &[u8]) -> Mode {
        Mode::Hash(Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length"))
    }
}

#[derive(Clone)]
struct Rule {
    preset: usize, // the counter it adds to
    regex: Regex,
}

/// The automata of one set of presets: built once per process and shared (a `Regex` clone
/// shares its compiled program), since building `redact=all`'s takes about 18 ms, which a
/// policy giving a thousand running containers redaction would otherwise pay each time.
#[derive(Clone)]
struct Compiled {
    any: Option<Regex>,
    which: Option<RegexSet>,
    rules: Vec<Rule>,
    key_blocks: Option<(Regex, Regex)>,
}

/// Preset sets seen so far (at most 2^6 of them: the cache is bounded by the presets).
static COMPILED: OnceLock<Mutex<HashMap<Vec<usize>, Compiled>>> = OnceLock::new();

fn compiled(presets: &[usize]) -> Compiled {
    let cache = COMPILED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry(presets.to_vec())
        .or_insert_with(|| compile(presets))
        .clone()
}

fn compile(presets: &[usize]) -> Compiled {
    let mut rules = Vec::new();
    let mut all = Vec::new();
    for &preset in presets {
        for pattern in PRESETS[preset].1 {
            rules.push(Rule {
                preset,
                regex: build(pattern).expect("a preset's pattern compiles"),
            });
            all.push(format!("(?:{pattern})"));
        }
    }
    let key_blocks = presets.contains(&KEYS).then(|| {
        let begin = build(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----").expect("compiles");
        let end = build(r"-----END [A-Z0-9 ]*PRIVATE KEY-----").expect("compiles");
        (begin, end)
    });
    let patterns: Vec<&str> = presets
        .iter()
        .flat_map(|&p| PRESETS[p].1.iter().copied())
        .collect();
    let which = (!patterns.is_empty()).then(|| {
        RegexSetBuilder::new(patterns.iter().map(|p| ascii_boundaries(p)))
            .size_limit(4 << 20)
            .build()
            .expect("presets compile as a set")
    });
    Compiled {
        any: (!all.is_empty()).then(|| build(&all.join("|")).expect("presets compile together")),
        which,
        rules,
        key_blocks,
    }
}

/// A container's own pattern: the bounded matcher decides, captures find the value.
pub struct Custom {
    pub check: Pattern,
    pub regex: Regex,
}

pub struct Redact {
    any: Option<Regex>,      // every preset pattern at once: most lines stop here
    which: Option<RegexSet>, // on a line that matched: which rules to search for values
    rules: Vec<Rule>,
    custom: Option<Custom>,
    key_blocks: Option<(Regex, Regex)>, // BEGIN and END of a private key, with redact=keys
    open_key: [u32; 2],                 // per stream: lines of an open private key block
    mode: Mode,
    counts: [u64; COUNTERS.len()],
}

/// `\b` as an ASCII word boundary: a Unicode one makes the lazy DFA give up on any line
/// with non-ASCII text (900 ns a byte of Cyrillic through the fallback, against 2.5).
fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

/// A preset's pattern (every shape the presets find is ASCII, so are their boundaries).
fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&ascii_boundaries(pattern))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Compile a container's `redact-pattern` for finding its matches (the bounded check is
/// `rules::compile`'s).
pub fn custom_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(256 << 10)
        .build()
        .map_err(|e| e.to_string())
}

/// The preset names a `redact=` list may hold (and `all`).
pub fn preset_index(name: &str) -> Option<usize> {
    PRESETS.iter().position(|(n, _)| *n == name)
}

fn luhn(digits: &[u8]) -> bool {
    let digits: Vec<u32> = digits
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Redact {
    /// The step for these presets (indexes into `PRESETS`), pattern and mode.
    pub fn new(presets: &[usize], custom: Option<Custom>, mode: Mode) -> Redact {
        let Compiled {
            any,
            which,
            rules,
            key_blocks,
        } = compiled(presets);
        Redact {
            any,
            which,
            rules,
            custom,
            key_blocks,
            open_key: [0; 2],
            mode,
            counts: [0; COUNTERS.len()],
        }
    }

    /// The spans of `line` to mask, sorted, each with its counter.
    fn find(&mut self, line: &[u8], stream: Option<usize>, spans: &mut Vec<(usize, usize, usize)>) {
        if let (Some((begin, end)), Some(stream)) = (&self.key_blocks, stream) {
            let mut from = 0;
            if self.open_key[stream] > 0 {
                match end.find(line) {
                    Some(found) => {
                        spans.push((0, found.end(), usize::MAX));
                        self.open_key[stream] = 0;
                        from = found.end();
                    }
                    None => {
                        spans.push((0, line.len(), usize::MAX));
                        self.open_key[stream] += 1;
                        if self.open_key[stream] >= MAX_KEY_LINES {
                            self.open_key[stream] = 0;
                        }
                        return;
                    }
                }
            }
            if let Some(found) = begin.find_at(line, from) {
                self.counts[KEYS] += 1;
                match end.find_at(line, found.end()) {
                    Some(closed) => spans.push((found.start(), closed.end(), usize::MAX)),
                    None => {
                        spans.push((found.start(), line.len(), usize::MAX));
                        self.open_key[stream] = 1;
                    }
                }
            }
        }
        if self.any.as_ref().is_some_and(|any| any.is_match(line)) {
            let which = self.which.as_ref().expect("with any").matches(line);
            for rule in which.iter().map(|index| &self.rules[index]) {
                for caps in rule.regex.captures_iter(line) {
                    let value = caps.get(1).or_else(|| caps.get(0)).expect("a match");
                    if rule.preset == CARDS && !luhn(value.as_bytes()) {
                        continue;
                    }
                    spans.push((value.start(), value.end(), rule.preset));
                }
            }
        }
    }

    /// `line` with `spans` replaced (overlapping spans merged), counting each.
    fn rewrite(&mut self, line: &[u8], spans: &mut [(usize, usize, usize)], out: &mut Vec<u8>) {
        spans.sort_unstable();
        // A value shorter than what replaces it grows the line (`pwd=x` by 22 bytes with
        // `hash`): past twice its length, the rest of the line is one mask.
        let limit = 2 * line.len() + MAX_GROWTH;
        let mut at = 0;
        for &(start, end, counter) in spans.iter() {
            if counter != usize::MAX {
                self.counts[counter] += 1;
            }
            if end <= at {
                continue; // inside a span already replaced
            }
            let start = start.max(at);
            if out.len() + (start - at) + HASHED_LEN + (line.len() - end) > limit {
                out.extend_from_slice(MASK); // from here to the end
                at = line.len();
                break;
            }
            out.extend_from_slice(&line[at..start]);
            at = end;
            match &self.mode {
                Mode::Hash(keyed) => {
                    let mut mac = keyed.clone();
                    mac.update(&line[start..end]);
                    let digest = mac.finalize().into_bytes();
                    out.extend_from_slice(b"[HMAC:");
                    for byte in &digest[..HASH_HEX / 2] {
                        out.push(HEX[usize::from(byte >> 4)]);
                        out.push(HEX[usize::from(byte & 15)]);
                    }
                    out.push(b']');
                }
                _ => out.extend_from_slice(MASK),
            }
        }
        out.extend_from_slice(&line[at..]);
    }

    /// A custom pattern's spans; false if the line could not be checked.
    fn find_custom(
        &mut self,
        line: &[u8],
        budget: &mut Budget,
        spans: &mut Vec<(usize, usize, usize)>,
    ) -> bool {
        let Some(custom) = &self.custom else {
            return true;
        };
        if budget.spent(line.len()) {
            return false;
        }
        let found = custom.check.find_bytes(line);
        if found.gave_up {
            return false;
        }
        if found.is_match {
            for caps in custom.regex.captures_iter(line) {
                let value = caps.get(1).or_else(|| caps.get(0)).expect("a match");
                if value.start() < value.end() {
                    spans.push((value.start(), value.end(), BY_PATTERN));
                }
            }
        }
        true
    }
}

impl Step for Redact {
    fn process(&mut self, input: Lines, _now: f64, budget: &mut Budget) -> Lines {
        let mut spans = Vec::new();
        let mut out = Lines::default();
        let mut keep = Vec::with_capacity(input.records.len());
        let mut changed = false;
        let mut rewritten: Vec<Option<Vec<u8>>> = Vec::with_capacity(input.records.len());
        for record in &input.records {
            let line = &input.arena[record.start..record.end];
            let stream = match record.source {
                Source::Stdout => Some(0),
                Source::Stderr => Some(1),
                Source::Other(_) => None,
            };
            spans.clear();
            self.find(line, stream, &mut spans);
            if !self.find_custom(line, budget, &mut spans) {
                self.counts[UNCHECKED] += 1;
                keep.push(false);
                rewritten.push(None);
                continue;
            }
            if spans.is_empty() {
                keep.push(true);
                rewritten.push(None);
                continue;
            }
            if matches!(self.mode, Mode::DropLine) {
                spans
                    .iter()
                    .filter(|s| s.2 != usize::MAX)
                    .for_each(|s| self.counts[s.2] += 1);
                self.counts[DROPPED] += 1;
                keep.push(false);
                rewritten.push(None);
                continue;
            }
            let mut text = Vec::with_capacity(line.len());
            self.rewrite(line, &mut spans, &mut text);
            changed = true;
            keep.push(true);
            rewritten.push(Some(text));
        }
        if !changed {
            let mut input = input;
            retain(&mut input, &keep);
            return input;
        }
        for ((record, keep), text) in input.records.iter().zip(&keep).zip(&rewritten) {
            if !keep {
                continue;
            }
            match text {
                Some(text) => {
                    out.push(
                        record.source.clone(),
                        record.time_nano,
                        text,
                        record.partial.clone(),
                    );
                    out.records.last_mut().expect("pushed").event = record.event.clone();
                }
                None => out.push_from(&input, record),
            }
        }
        out
    }

    fn counters(&self) -> &'static [Counter] {
        COUNTERS
    }

    fn values(&self) -> Vec<u64> {
        self.counts.to_vec()
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;

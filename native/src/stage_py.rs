//! `logdriver._native.Stage`: the processing stage (`stage.rs`) for one container.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::filter::{min_level_index, Filter};
use crate::multiline::Multiline;
use crate::rate_limit::{Rate, RateLimit};
use crate::redact::{custom_regex, preset_index, Custom, Mode, Redact, PRESETS};
use crate::stage::{self, Limits, Pattern, Rules, Steps};
use crate::Batch;

/// What a container's options ask of its stage: ``logdriver.config.processing.Processing``,
/// read by attribute (the record is the declaration; nothing is passed by position). A
/// preset, pattern or level that is None or empty is unset.
#[derive(FromPyObject)]
struct StageConfig {
    #[pyo3(attribute)]
    preset: Option<String>,
    #[pyo3(attribute)]
    start: Option<String>,
    #[pyo3(attribute)]
    cont: Option<String>,
    #[pyo3(attribute)]
    max_lines: u32,
    #[pyo3(attribute)]
    max_bytes: usize,
    #[pyo3(attribute)]
    timeout: f64,
    #[pyo3(attribute)]
    parse_json: bool,
    #[pyo3(attribute)]
    drop_lines: Option<String>,
    #[pyo3(attribute)]
    keep_lines: Option<String>,
    #[pyo3(attribute)]
    min_level: Option<String>,
    #[pyo3(attribute)]
    rate_limit: Option<f64>, // lines a second
    #[pyo3(attribute)]
    rate_limit_bytes: Option<f64>, // bytes a second
    #[pyo3(attribute)]
    rate_limit_burst: Option<f64>, // lines
    #[pyo3(attribute)]
    rate_limit_exempt: Option<String>,
    #[pyo3(attribute)]
    rate_limit_action: Option<String>,
    #[pyo3(attribute)]
    redact: Option<String>, // a comma list of presets, or all
    #[pyo3(attribute)]
    redact_pattern: Option<String>,
    #[pyo3(attribute)]
    redact_mode: Option<String>,
    #[pyo3(attribute)]
    redact_store: bool,
}

/// An option's text, unless it is unset (None or empty).
fn set(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.is_empty())
}

/// A pattern option: unset when empty; a ValueError naming the option if it does not compile.
fn pattern(option: &str, text: &Option<String>) -> PyResult<Option<Pattern>> {
    let Some(text) = set(text) else {
        return Ok(None);
    };
    stage::compile(text)
        .map(Some)
        .map_err(|e| PyValueError::new_err(format!("{option}: {e}")))
}

impl StageConfig {
    fn filter(&self) -> PyResult<Option<Filter>> {
        let min_level =
            match set(&self.min_level) {
                None => None,
                Some(name) => Some(min_level_index(name).ok_or_else(|| {
                    PyValueError::new_err(format!("min-level: no level {name:?}"))
                })?),
            };
        let drop_lines = pattern("drop-lines", &self.drop_lines)?;
        let keep_lines = pattern("keep-lines", &self.keep_lines)?;
        Ok(
            (drop_lines.is_some() || keep_lines.is_some() || min_level.is_some())
                .then(|| Filter::new(drop_lines, keep_lines, min_level)),
        )
    }

    fn redact(&self, key: &[u8]) -> PyResult<Option<Redact>> {
        let mut presets = Vec::new();
        for name in set(&self.redact)
            .unwrap_or("")
            .split(',')
            .filter(|n| !n.is_empty())
        {
            if name == "all" {
                presets.extend(0..PRESETS.len());
                continue;
            }
            presets.push(
                preset_index(name)
                    .ok_or_else(|| PyValueError::new_err(format!("redact: no preset {name:?}")))?,
            );
        }
        presets.sort_unstable();
        presets.dedup();
        let custom = match set(&self.redact_pattern) {
            None => None,
            Some(text) => Some(Custom {
                check: pattern("redact-pattern", &self.redact_pattern)?.expect("set"),
                regex: custom_regex(text)
                    .map_err(|e| PyValueError::new_err(format!("redact-pattern: {e}")))?,
            }),
        };
        if presets.is_empty() && custom.is_none() {
            return Ok(None);
        }
        let mode = match set(&self.redact_mode) {
            Some("hash") => Mode::hash(key),
            Some("drop-line") => Mode::DropLine,
            _ => Mode::Mask,
        };
        Ok(Some(Redact::new(&presets, custom, mode)))
    }

    fn rate_limit(&self) -> PyResult<Option<RateLimit>> {
        let lines = self.rate_limit.map(|per_second| Rate {
            per_second,
            burst: self.rate_limit_burst.unwrap_or(per_second).max(1.0),
        });
        let bytes = self.rate_limit_bytes.map(|per_second| Rate {
            per_second,
            burst: per_second,
        });
        if lines.is_none() && bytes.is_none() {
            return Ok(None);
        }
        let exempt = pattern("rate-limit-exempt", &self.rate_limit_exempt)?;
        let block = set(&self.rate_limit_action) == Some("block");
        Ok(Some(RateLimit::new(lines, bytes, exempt, block)))
    }
}

/// One container's processing steps; every call returns a new batch.
#[pyclass(module = "logdriver._native")]
pub struct Stage {
    stage: stage::Stage,
}

#[pymethods]
impl Stage {
    /// The steps ``config`` asks for; ``redact_key`` is the plugin's key for
    /// ``redact-mode=hash``. A pattern that does not compile raises ValueError with the reason.
    #[new]
    #[pyo3(signature = (config, redact_key=None))]
    fn new(config: StageConfig, redact_key: Option<Vec<u8>>) -> PyResult<Stage> {
        let owned = |text: &Option<String>| set(text).map(str::to_owned);
        let rules = match (
            owned(&config.preset),
            owned(&config.start),
            owned(&config.cont),
        ) {
            (Some(name), None, None) => Some(
                Rules::preset(&name)
                    .ok_or_else(|| PyValueError::new_err(format!("no preset {name:?}")))?,
            ),
            (None, None, None) => None,
            (None, start, cont) => Some(Arc::new(
                Rules::custom(start.as_deref(), cont.as_deref()).map_err(PyValueError::new_err)?,
            )),
            _ => {
                return Err(PyValueError::new_err(
                    "a preset or custom patterns, not both",
                ))
            }
        };
        let limits = Limits {
            max_lines: config.max_lines,
            max_bytes: config.max_bytes,
            timeout: config.timeout,
        };
        let steps = Steps {
            redact: config.redact(redact_key.unwrap_or_default().as_slice())?,
            redact_store: config.redact_store,
            multiline: rules.map(|rules| Multiline::new(rules, limits)),
            parse_json: config.parse_json,
            filter: config.filter()?,
            rate_limit: config.rate_limit()?,
        };
        Ok(Stage {
            stage: stage::Stage::of(steps),
        })
    }

    /// The batch redacted, for the ``docker logs`` store and then ``process``, when
    /// ``redacts_store``; the batch as it is otherwise. Runs without the GIL.
    fn redact(&mut self, py: Python<'_>, batch: PyRef<'_, Batch>, now: f64) -> Batch {
        let lines = &batch.lines;
        let stage = &mut self.stage;
        Batch::from(py.detach(|| stage.redact(lines, now)))
    }

    /// ``redact`` redacts: store what it returns, not the raw frames.
    #[getter]
    fn redacts_store(&self) -> bool {
        self.stage.redacts_store()
    }

    /// The batch's records through every step; ``now`` is the caller's clock in seconds.
    /// Runs without the GIL: call it from a worker thread, one call per stage at a time.
    fn process(&mut self, py: Python<'_>, batch: PyRef<'_, Batch>, now: f64) -> Batch {
        let lines = &batch.lines;
        let stage = &mut self.stage;
        Batch::from(py.detach(|| stage.process(lines, now)))
    }

    /// What has waited its timeout by ``now``.
    fn flush_due(&mut self, now: f64) -> Batch {
        Batch::from(self.stage.flush_due(now))
    }

    /// Everything held, at the end of the stream.
    fn finish(&mut self, now: f64) -> Batch {
        Batch::from(self.stage.finish(now))
    }

    /// What is held, sent now and marked cut (the memory budget has no room for it).
    fn cut_open(&mut self, now: f64) -> Batch {
        Batch::from(self.stage.cut_open(now).0)
    }

    /// Every step costs a small constant of ours per line: any read may be processed on the loop.
    #[getter]
    fn light(&self) -> bool {
        self.stage.light()
    }

    /// A step holds lines back (a ``block`` rate limit): stop reading the FIFO until it does not.
    #[getter]
    fn holds_back(&self) -> bool {
        self.stage.holds_back()
    }

    /// When the oldest thing held is due (the caller's clock), or None.
    fn next_deadline(&self) -> Option<f64> {
        self.stage.next_deadline()
    }

    /// No call was costly per byte lately: a small batch may be processed on the caller's loop.
    #[getter]
    fn cheap(&self) -> bool {
        self.stage.cheap()
    }

    #[getter]
    fn held_bytes(&self) -> usize {
        self.stage.held_bytes()
    }

    /// This stage's counters: its steps' tables, then its own (``PROCESSING_COUNTERS``).
    fn statistics(&self) -> HashMap<&'static str, u64> {
        self.stage.statistics().into_iter().collect()
    }
}

/// Raise ValueError with the reason if ``pattern`` is not a usable multiline pattern.
#[pyfunction]
pub fn check_pattern(pattern: &str) -> PyResult<()> {
    stage::compile(pattern)
        .map(|_| ())
        .map_err(PyValueError::new_err)
}

/// A preset's rule as the reference shows it: (from, pattern, to, hold).
type RuleRow<'a> = (&'a str, &'a str, &'a str, bool);

/// The stage's class, its pattern check, and the tables the reference is generated from.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Stage>()?;
    m.add_function(wrap_pyfunction!(check_pattern, m)?)?;
    let caps = crate::structured::CAPS;
    m.add("JSON_CAPS", (caps.max_bytes, caps.max_depth, caps.max_keys))?;
    m.add("PROCESSING_CPU", (stage::CPU_SHARE, stage::CPU_BURST))?;
    m.add("LEVEL_NAMES", logdriver_lines::LEVEL_NAMES.to_vec())?;
    m.add(
        "REDACT_PRESETS",
        PRESETS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
    )?;
    m.add(
        "RATE_LIMIT",
        (
            crate::rate_limit::MARKER_SOURCE,
            crate::rate_limit::MARKER_INTERVAL,
            crate::rate_limit::MAX_HOLD,
        ),
    )?;
    m.add("PROCESSING_COUNTERS", stage::counter_table())?;
    m.add("PATTERN_FALLBACK_PREFIX", stage::FALLBACK_PREFIX)?;
    let rules: Vec<(&str, Vec<RuleRow>)> = crate::presets::PRESETS
        .iter()
        .map(|(name, table)| {
            let rows = table
                .iter()
                .map(|r| (r.from, r.pattern, r.to, r.hold))
                .collect();
            (*name, rows)
        })
        .collect();
    m.add("MULTILINE_RULES", rules)?;
    let keys: Vec<(&str, Vec<&str>)> = crate::structured::ROLE_NAMES
        .iter()
        .zip(crate::structured::ROLES)
        .map(|(role, names)| (*role, names.to_vec()))
        .collect();
    m.add("JSON_KEYS", keys)?;
    m.add(
        "MULTILINE_PRESETS",
        crate::presets::PRESETS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}

//! `logdriver._native.Stage`: the processing stage (`stage.rs`) for one container.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::stage::{self, Limits, Rules};
use crate::Batch;

/// What a container's options ask of its stage: ``logdriver.config.processing.Processing``,
/// read by attribute (the record is the declaration; nothing is passed by position). An
/// empty preset or pattern is unset.
#[derive(FromPyObject)]
struct StageConfig {
    #[pyo3(attribute)]
    preset: String,
    #[pyo3(attribute)]
    start: String,
    #[pyo3(attribute)]
    cont: String,
    #[pyo3(attribute)]
    max_lines: u32,
    #[pyo3(attribute)]
    max_bytes: usize,
    #[pyo3(attribute)]
    timeout: f64,
    #[pyo3(attribute)]
    parse_json: bool,
}

/// One container's processing steps; every call returns a new batch.
#[pyclass(module = "logdriver._native")]
pub struct Stage {
    stage: stage::Stage,
}

#[pymethods]
impl Stage {
    /// The steps ``config`` asks for. A pattern that does not compile raises ValueError
    /// with the reason.
    #[new]
    fn new(config: StageConfig) -> PyResult<Stage> {
        let set = |text: String| (!text.is_empty()).then_some(text);
        let rules = match (set(config.preset), set(config.start), set(config.cont)) {
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
        Ok(Stage {
            stage: stage::Stage::new(rules, limits, config.parse_json),
        })
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

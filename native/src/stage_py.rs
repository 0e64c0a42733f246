//! `logdriver._native.Stage`: the processing stage (`stage.rs`) for one container.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::stage::{self, Limits, Rules};
use crate::{Batch, Lines};

/// One container's multiline joining and JSON parsing; every call returns a new batch.
#[pyclass(module = "logdriver._native")]
pub struct Stage {
    stage: stage::Stage,
}

#[pymethods]
impl Stage {
    /// ``preset`` or ``start``/``cont`` patterns for multiline (all None: no joining).
    /// A pattern that does not compile raises ValueError with the reason.
    #[new]
    #[pyo3(signature = (preset, start, cont, max_lines, max_bytes, timeout, parse_json))]
    fn new(
        preset: Option<&str>,
        start: Option<&str>,
        cont: Option<&str>,
        max_lines: u32,
        max_bytes: usize,
        timeout: f64,
        parse_json: bool,
    ) -> PyResult<Stage> {
        let rules = match (preset, start, cont) {
            (Some(name), None, None) => Some(
                Rules::preset(name)
                    .ok_or_else(|| PyValueError::new_err(format!("no preset {name:?}")))?,
            ),
            (None, None, None) => None,
            (None, start, cont) => Some(Arc::new(
                Rules::custom(start, cont).map_err(PyValueError::new_err)?,
            )),
            _ => {
                return Err(PyValueError::new_err(
                    "a preset or custom patterns, not both",
                ))
            }
        };
        let limits = Limits {
            max_lines,
            max_bytes,
            timeout,
        };
        Ok(Stage {
            stage: stage::Stage::new(rules, limits, parse_json),
        })
    }

    /// The batch's records joined and parsed; ``now`` is the caller's clock in seconds.
    /// Runs without the GIL: call it from a worker thread, one call per stage at a time.
    fn process(&mut self, py: Python<'_>, batch: PyRef<'_, Batch>, now: f64) -> Batch {
        let lines = &batch.lines;
        let stage = &mut self.stage;
        let out = py.detach(|| {
            let mut out = Lines {
                arena: Vec::with_capacity(lines.arena.len()),
                records: Vec::with_capacity(lines.records.len()),
            };
            stage.process(lines, now, &mut out);
            out
        });
        Batch::from(out)
    }

    /// Events whose first line has waited the timeout by ``now``.
    fn flush_due(&mut self, now: f64) -> Batch {
        let mut out = Lines::default();
        self.stage.flush_due(now, &mut out);
        Batch::from(out)
    }

    /// Everything held, at the end of the stream.
    fn finish(&mut self) -> Batch {
        let mut out = Lines::default();
        self.stage.finish(&mut out);
        Batch::from(out)
    }

    /// Open events sent now, marked cut (the memory budget has no room for them).
    fn cut_open(&mut self) -> Batch {
        let mut out = Lines::default();
        self.stage.cut_open(&mut out);
        Batch::from(out)
    }

    /// When the oldest open event is due (the caller's clock), or None.
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

    fn statistics(&self) -> HashMap<&'static str, u64> {
        let s = &self.stage.stats;
        HashMap::from([
            ("multiline_events", s.events),
            ("multiline_lines", s.lines_joined),
            ("multiline_timed_out", s.timed_out),
            ("multiline_cut", s.cut),
            ("json_parsed", s.json_parsed),
            ("json_unparsed", s.json_unparsed),
            ("json_over_limit", s.json_over_limit),
            ("multiline_pattern_gave_up", s.pattern_gave_up),
            ("processing_over_cpu_budget", s.over_cpu_budget),
        ])
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

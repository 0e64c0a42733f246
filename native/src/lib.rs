//! `logdriver._native`: the FIFO hot path in Rust.
//!
//! dockerd writes one frame per log line and leaves a Python plugin well under a
//! microsecond per line on a 2-core host; decoding a line with upb and reading
//! its fields from Python costs about that much before any output is made. So
//! splitting frames, decoding `LogEntry` and rejoining 16 KiB partials happen
//! here, a read batch per call; ReadLogs re-encodes the store with the same
//! decoder. The batch it makes (`LogBatch`) knows no destination's format: each
//! sink renders it in an extension module of its own (`sinks/*/native`), from the
//! batch's column form. tests/reference/ holds the plain-Python decoders the tests
//! compare this one against.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

pub mod filter;
pub mod join;
pub mod multiline;
pub mod parse_json;
pub mod poller;
pub mod presets;
pub mod rate_limit;
pub mod readlogs;
pub mod redact;
pub mod rules;
pub mod stage;
mod stage_py;
pub mod step;
pub mod structured;
pub mod wire;

use join::{Joiner, Lines};
use wire::{decode_entry, Framer, Partial, Source};

/// The longest line dockerd writes in one entry; longer ones come in pieces of this size.
const DOCKER_PIECE: usize = 16 << 10;

type RecordTuple = (String, i64, Vec<u8>, Option<(String, i32, bool)>);

/// An immutable batch of rejoined log lines, shared by every sink of a container.
#[pyclass(name = "LogBatch", module = "logdriver._native", frozen)]
pub struct Batch {
    lines: Lines,
    /// The column form, made once: every sink of a container renders the same batch.
    columns: std::sync::OnceLock<(Py<PyBytes>, Py<PyBytes>)>,
}

impl From<Lines> for Batch {
    fn from(lines: Lines) -> Self {
        Batch {
            lines,
            columns: std::sync::OnceLock::new(),
        }
    }
}

#[pymethods]
impl Batch {
    /// Build from ``(source, time_nano, line, (id, ordinal, last) | None)`` tuples.
    #[staticmethod]
    fn from_tuples(records: Vec<RecordTuple>) -> PyResult<Batch> {
        let mut lines = Lines::default();
        for (source, time_nano, line, partial) in records {
            let source = Source::from_bytes(source.as_bytes())
                .map_err(|_| pyo3::exceptions::PyValueError::new_err("source"))?;
            lines.push(
                source,
                time_nano,
                &line,
                partial.map(|(id, ordinal, last)| Partial { id, ordinal, last }),
            );
        }
        Ok(Batch::from(lines))
    }

    fn __len__(&self) -> usize {
        self.lines.records.len()
    }

    /// Total bytes of the lines (newlines excluded): what buffers account for.
    #[getter]
    fn nbytes(&self) -> usize {
        self.lines.arena.len()
    }

    /// The records as ``(source, time_nano, line, (id, ordinal, last) | None)`` tuples.
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .lines
            .records
            .iter()
            .map(|r| {
                let partial = match &r.partial {
                    Some(p) => (p.id.as_str(), p.ordinal, p.last)
                        .into_pyobject(py)?
                        .into_any(),
                    None => py.None().into_bound(py),
                };
                PyTuple::new(
                    py,
                    [
                        r.source.as_str().into_pyobject(py)?.into_any(),
                        r.time_nano.into_pyobject(py)?.into_any(),
                        PyBytes::new(py, self.lines.line(r)).into_any(),
                        partial,
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// One batch of all the given batches' records, in order.
    #[staticmethod]
    fn concat(batches: Vec<PyRef<'_, Batch>>) -> Batch {
        let mut lines = Lines {
            arena: Vec::with_capacity(batches.iter().map(|b| b.lines.arena.len()).sum()),
            records: Vec::with_capacity(batches.iter().map(|b| b.lines.records.len()).sum()),
        };
        for batch in &batches {
            for r in &batch.lines.records {
                lines.push_from(&batch.lines, r);
            }
        }
        Batch::from(lines)
    }

    /// The records ``start`` (inclusive) to ``stop`` (exclusive), clamped to the batch.
    fn slice(&self, start: usize, stop: usize) -> Batch {
        let stop = stop.min(self.lines.records.len());
        let mut lines = Lines::default();
        for r in &self.lines.records[start.min(stop)..stop] {
            lines.push_from(&self.lines, r);
        }
        Batch::from(lines)
    }

    /// How many leading records fit in ``limit`` line bytes (at least one, if any).
    fn count_within(&self, limit: usize) -> usize {
        let mut total = 0;
        for (i, r) in self.lines.records.iter().enumerate() {
            total += r.end - r.start;
            if total > limit {
                return i.max(1);
            }
        }
        self.lines.records.len()
    }

    /// The records as Docker frames (length + LogEntry, partial metadata kept): the spool's format.
    fn to_frames<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.lines.arena.len() + self.lines.records.len() * 32);
        for r in &self.lines.records {
            wire::encode_frame(
                r.source.as_str(),
                r.time_nano,
                self.lines.line(r),
                r.partial.as_ref(),
                r.event.as_deref(),
                &mut out,
            );
        }
        PyBytes::new(py, &out)
    }

    /// The records as Docker writes them to a FIFO, for the ``docker logs`` store: a line
    /// longer than Docker's 16 KiB goes in pieces (cut at a character boundary), partial
    /// but the last, so that a stored frame is as small as dockerd's and ``docker logs``
    /// shows the line as json-file would. Processing metadata is not stored.
    fn to_docker_frames<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::with_capacity(self.lines.arena.len() + self.lines.records.len() * 32);
        for (index, r) in self.lines.records.iter().enumerate() {
            let line = self.lines.line(r);
            if line.len() <= DOCKER_PIECE {
                let partial = r.partial.as_ref();
                wire::encode_frame(
                    r.source.as_str(),
                    r.time_nano,
                    line,
                    partial,
                    None,
                    &mut out,
                );
                continue;
            }
            // A piece of a line cut before keeps its id and is never last unless it was.
            let id = r
                .partial
                .as_ref()
                .map_or_else(|| format!("{:x}-{index}", r.time_nano), |p| p.id.clone());
            let last_of_line = r.partial.as_ref().is_none_or(|p| p.last);
            let (mut at, mut ordinal) = (0, 1);
            while at < line.len() {
                let mut end = (at + DOCKER_PIECE).min(line.len());
                while end < line.len() && end > at + 1 && (line[end] & 0xC0) == 0x80 {
                    end -= 1; // not inside a UTF-8 character
                }
                let last = end == line.len() && last_of_line;
                let piece = Partial {
                    id: id.clone(),
                    ordinal,
                    last,
                };
                wire::encode_frame(
                    r.source.as_str(),
                    r.time_nano,
                    &line[at..end],
                    Some(&piece),
                    None,
                    &mut out,
                );
                (at, ordinal) = (end, ordinal + 1);
            }
        }
        PyBytes::new(py, &out)
    }

    /// The inverse of ``to_frames``: no rejoining, records exactly as stored.
    #[staticmethod]
    fn from_frames(data: &[u8]) -> PyResult<Batch> {
        let mut framer = Framer::new(usize::MAX >> 1);
        let mut lines = Lines::default();
        let mut bad = false;
        framer.feed(
            data,
            |body| match decode_entry(body) {
                Ok(e) => {
                    let partial = e.partial.then(|| {
                        e.meta.unwrap_or(Partial {
                            id: String::new(),
                            ordinal: 0,
                            last: false,
                        })
                    });
                    lines.push(e.source, e.time_nano, e.line, partial);
                    if let Some(bytes) = e.event {
                        match logdriver_lines::Event::decode(bytes) {
                            Ok(event) => {
                                lines.records.last_mut().expect("pushed").event =
                                    Some(Box::new(event))
                            }
                            Err(_) => bad = true,
                        }
                    }
                }
                Err(_) => bad = true,
            },
            |_| {},
        );
        framer.finish();
        if bad || framer.stats.truncated_bytes_at_eof > 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "not a sequence of LogEntry frames",
            ));
        }
        Ok(Batch::from(lines))
    }

    /// A new batch of the records at ``indexes`` (for partial retries).
    fn select(&self, indexes: Vec<usize>) -> PyResult<Batch> {
        let mut lines = Lines::default();
        for i in indexes {
            let r = self
                .lines
                .records
                .get(i)
                .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(i))?;
            lines.push_from(&self.lines, r);
        }
        Ok(Batch::from(lines))
    }

    /// The batch's column form, ``(lines, extras, index)``, for a sink's own renderer
    /// module (see ``native/lines/src/columns.rs``): extension modules cannot share a
    /// Rust type. ``lines`` is the batch itself, read through the buffer protocol.
    fn columns<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
    ) -> (Bound<'py, Self>, Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        let this = slf.get();
        let (extras, index) = this.columns.get_or_init(|| {
            let (extras, index) = logdriver_lines::columns::export(&this.lines);
            (
                PyBytes::new(py, &extras).unbind(),
                PyBytes::new(py, &index).unbind(),
            )
        });
        (slf.clone(), extras.bind(py).clone(), index.bind(py).clone())
    }

    /// The line bytes, read-only, without a copy: the batch is immutable, and the
    /// buffer keeps it alive.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let arena = &slf.get().lines.arena;
        let filled = pyo3::ffi::PyBuffer_FillInfo(
            view,
            slf.as_ptr(),
            arena.as_ptr() as *mut std::os::raw::c_void,
            arena.len() as pyo3::ffi::Py_ssize_t,
            1,
            flags,
        );
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {}
}

/// One FIFO's decoder: frames → entries → rejoined lines, a read at a time.
#[pyclass(module = "logdriver._native")]
pub struct FrameReader {
    framer: Framer,
    joiner: Joiner,
}

#[pymethods]
impl FrameReader {
    #[new]
    fn new(max_frame_size: usize, max_line_size: usize) -> Self {
        FrameReader {
            framer: Framer::new(max_frame_size),
            joiner: Joiner::new(max_line_size),
        }
    }

    /// Decode ``data``; return (the raw bytes of its whole frames, the lines completed).
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> (Bound<'py, PyBytes>, Batch) {
        let mut out = Lines {
            arena: Vec::with_capacity(data.len()),
            records: Vec::new(),
        };
        let joiner = &mut self.joiner;
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut raw_copy: Vec<u8> = Vec::new();
        let base = data.as_ptr() as usize;
        self.framer.feed(
            data,
            |body| match decode_entry(body) {
                Ok(entry) => joiner.push(entry, &mut out),
                Err(_) => {
                    joiner.stats.entries += 1;
                    joiner.stats.decode_errors += 1;
                }
            },
            |span| {
                // Spans inside `data` are recorded, others (a frame straddling reads) copied.
                let at = span.as_ptr() as usize;
                if at >= base
                    && at + span.len() <= base + data.len()
                    && raw_copy.is_empty()
                    && spans.is_empty()
                {
                    spans.push((at - base, at - base + span.len()));
                } else {
                    for (s, e) in spans.drain(..) {
                        raw_copy.extend_from_slice(&data[s..e]);
                    }
                    raw_copy.extend_from_slice(span);
                }
            },
        );
        let raw = match (spans.first(), raw_copy.is_empty()) {
            (Some(&(s, e)), true) => PyBytes::new(py, &data[s..e]),
            _ => PyBytes::new(py, &raw_copy),
        };
        // A batch may wait in queues for minutes: give back the growth slack (up to half of
        // the records' and a tenth of the arena's allocation) so the memory budget's count
        // is what the process holds. A shrinking realloc is in place or an mremap.
        out.records.shrink_to_fit();
        out.arena.shrink_to_fit();
        (raw, Batch::from(out))
    }

    /// The open partial lines' bytes now, as pieces marked partial (the memory budget
    /// has no room for them); their buffers are freed and each line goes on from there.
    fn cut_open(&mut self) -> Batch {
        let mut out = Lines::default();
        self.joiner.cut_all(&mut out);
        Batch::from(out)
    }

    /// End of stream: count a truncated frame, flush unterminated lines.
    fn finish(&mut self) -> Batch {
        self.framer.finish();
        let mut out = Lines::default();
        self.joiner.flush(&mut out);
        Batch::from(out)
    }

    /// Corrupt frame headers plus undecodable entries so far (cheap, for per-read checks).
    #[getter]
    fn errors(&self) -> u64 {
        self.framer.stats.oversize_frames + self.joiner.stats.decode_errors
    }

    #[getter]
    fn open_bytes(&self) -> usize {
        self.joiner.open_bytes()
    }

    fn statistics(&self) -> HashMap<&'static str, u64> {
        let (f, j) = (&self.framer.stats, &self.joiner.stats);
        HashMap::from([
            ("frames", f.frames),
            ("bytes", f.bytes),
            ("oversize_frames", f.oversize_frames),
            ("skipped_bytes", f.skipped_bytes),
            ("truncated_bytes_at_eof", f.truncated_bytes_at_eof),
            ("entries", j.entries),
            ("decode_errors", j.decode_errors),
            ("lines_rejoined", j.lines_rejoined),
            ("lines_cut", j.lines_cut),
            ("lines_unterminated", j.lines_unterminated),
        ])
    }
}

/// ReadLogs: stored frames re-encoded for the daemon, filtered by time (see ``readlogs.rs``).
#[pyclass(module = "logdriver._native")]
pub struct ReadLogsEncoder {
    filter: readlogs::Filter,
}

#[pymethods]
impl ReadLogsEncoder {
    #[new]
    #[pyo3(signature = (since_ns, until_ns))]
    fn new(since_ns: Option<i64>, until_ns: Option<i64>) -> Self {
        ReadLogsEncoder {
            filter: readlogs::Filter {
                since: since_ns,
                until: until_ns,
                past_until: false,
            },
        }
    }

    /// (frames to send, bytes of ``data`` consumed): whole frames only, after skipping ``skip``.
    #[pyo3(signature = (data, skip = 0))]
    fn encode<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        skip: usize,
    ) -> (Bound<'py, PyBytes>, usize) {
        let mut out = Vec::new();
        let consumed = self.filter.encode(data, skip, &mut out);
        (PyBytes::new(py, &out), consumed)
    }

    /// True once an entry later than ``until`` was seen: the read is over.
    #[getter]
    fn past_until(&self) -> bool {
        self.filter.past_until
    }
}

/// logdriver's JSON record of every line (``native/lines/src/record.rs``), each followed by
/// ``suffix`` (the caller's own fields, the closing ``}`` and ``\n``).
#[pyfunction]
fn json_records<'py>(
    py: Python<'py>,
    batch: PyRef<'py, Batch>,
    suffix: &[u8],
) -> Bound<'py, PyBytes> {
    let mut out = Vec::new();
    logdriver_lines::record::json_records(&batch.lines, suffix, &mut out);
    PyBytes::new(py, &out)
}

/// (bytes, count) of the whole frames at the start of ``data``.
#[pyfunction]
fn whole_frames(data: &[u8]) -> (usize, usize) {
    readlogs::whole_frames(data)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Batch>()?;
    m.add_class::<FrameReader>()?;
    m.add_class::<ReadLogsEncoder>()?;
    m.add_class::<poller::FifoPoller>()?;
    stage_py::register(m)?;
    m.add_function(wrap_pyfunction!(whole_frames, m)?)?;
    m.add_function(wrap_pyfunction!(json_records, m)?)?;
    Ok(())
}

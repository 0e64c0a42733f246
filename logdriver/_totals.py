"""Counters across FIFOs and sinks, for metrics and health.

Closed FIFOs fold their final counts in here; a snapshot adds the open ones,
read from their decoders and pipelines at that moment (nothing on the hot path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._native import FrameReader
from ._pipeline import COUNTER_FIELDS, PipelineStatistics, SinkPipeline, SinkSnapshot


@dataclass(slots=True)
class FifoStatistics:
    entries: int = 0
    records: int = 0
    bytes: int = 0
    decode_errors: int = 0
    corrupt_frames: int = 0
    skipped_bytes: int = 0
    store_errors: int = 0  # reads whose frames the docker logs store could not write (disk full)


_FIFO_FIELDS = ("entries", "records", "bytes", "decode_errors", "corrupt_frames", "skipped_bytes", "store_errors")


def _add(into: object, other: object, fields: Iterable[str]) -> None:
    for name in fields:
        setattr(into, name, getattr(into, name) + getattr(other, name))


class Totals:
    def __init__(self) -> None:
        self.fifos = FifoStatistics()
        self.sinks: dict[str, PipelineStatistics] = {}

    def fold_fifo(self, fifo: FifoStatistics) -> None:
        """Add a closed FIFO's final counts."""
        _add(self.fifos, fifo, _FIFO_FIELDS)

    def fold_pipeline(self, pipeline: SinkPipeline) -> None:
        """Add a finished pipeline's final counts (it may finish long after its FIFO)."""
        _add(self.sinks.setdefault(pipeline.sink, PipelineStatistics()), pipeline.statistics, COUNTER_FIELDS)

    def fifo_snapshot(self, decoders: Iterable[FrameReader]) -> FifoStatistics:
        out = dataclasses.replace(self.fifos)
        for decoder in decoders:
            counts = decoder.statistics()
            out.entries += counts["entries"]
            out.bytes += counts["bytes"]
            out.decode_errors += counts["decode_errors"]
            out.corrupt_frames += counts["oversize_frames"]
            out.skipped_bytes += counts["skipped_bytes"]
        return out

    def sink_snapshot(
        self, sink_names: Iterable[str], open_pipelines: Iterable[Mapping[str, SinkPipeline]], now: float
    ) -> dict[str, SinkSnapshot]:
        out = {name: SinkSnapshot(totals=PipelineStatistics()) for name in sink_names}
        for name, total in self.sinks.items():
            _add(out.setdefault(name, SinkSnapshot(totals=PipelineStatistics())).totals, total, COUNTER_FIELDS)
        for pipelines in open_pipelines:
            for name, pipeline in pipelines.items():
                snap = out.setdefault(name, SinkSnapshot(totals=PipelineStatistics()))
                _add(snap.totals, pipeline.statistics, COUNTER_FIELDS)
                snap.buffer_lines += pipeline.queue.entries
                snap.buffer_bytes += pipeline.queue.bytes
                if pipeline.spool is not None:
                    snap.spool_bytes += pipeline.spool.bytes
                oldest = pipeline.queue.oldest_since()
                if oldest is not None:
                    snap.oldest_age = max(snap.oldest_age, now - oldest)
                failing = pipeline.statistics.failing_since
                if failing is not None:
                    snap.failing_for = max(snap.failing_for, now - failing)
        return out

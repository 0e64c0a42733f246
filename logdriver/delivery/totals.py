"""Counters of FIFOs and pipelines that are gone, for metrics and health.

Closed FIFOs and finished pipelines fold their final counts in here; a
snapshot adds the open ones, each read through its own ``snapshot`` method at
that moment (nothing on the hot path).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from logdriver.delivery.pipeline import PipelineStatistics, SinkPipeline, SinkSnapshot


@dataclass(slots=True)
class FifoStatistics:
    """Counters of one FIFO or of many; every field adds up."""

    entries: int = 0
    records: int = 0
    bytes: int = 0
    decode_errors: int = 0
    corrupt_frames: int = 0
    skipped_bytes: int = 0
    store_errors: int = 0  # reads whose frames the docker logs store could not write (disk full)
    partial_cut_by_budget: int = 0  # open partial lines sent as pieces: the memory budget was full

    def add(self, other: FifoStatistics) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class Totals:
    def __init__(self) -> None:
        self.fifos = FifoStatistics()
        self.sinks: dict[str, PipelineStatistics] = {}
        self.requests: dict[str, tuple[int, int]] = {}  # sink → (requests, lines) of finished destinations

    def fold_fifo(self, fifo: FifoStatistics) -> None:
        """Add a closed FIFO's final counts."""
        self.fifos.add(fifo)

    def fold_pipeline(self, pipeline: SinkPipeline) -> None:
        """Add a finished pipeline's final counts (it may finish long after its FIFO)."""
        self.sinks.setdefault(pipeline.sink, PipelineStatistics()).add(pipeline.statistics)

    def fold_requests(self, sink: str, requests: int, lines: int) -> None:
        """Add a finished destination's request counts."""
        before = self.requests.get(sink, (0, 0))
        self.requests[sink] = (before[0] + requests, before[1] + lines)

    def sink_snapshot(self) -> dict[str, SinkSnapshot]:
        """The finished pipelines' and destinations' counters per sink (a copy the caller adds live ones to)."""
        out = {name: SinkSnapshot(totals=dataclasses.replace(total)) for name, total in self.sinks.items()}
        for name, (requests, lines) in self.requests.items():
            snap = out.setdefault(name, SinkSnapshot())
            snap.requests, snap.request_lines = requests, lines
        return out

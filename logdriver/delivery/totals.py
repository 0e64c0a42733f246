"""Counters of FIFOs and pipelines that are gone, for metrics and health.

Closed FIFOs and finished pipelines fold their final counts in here; a
record adds the open ones, each read through its own ``statistics()`` at that
moment (nothing on the hot path).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from logdriver._counters import Counters
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.pipeline_statistics import PipelineCounters, PipelineStatistics
from logdriver.delivery.sender import SenderStatistics


@dataclass(slots=True)
class FifoStatistics(Counters):
    """Counters of one FIFO or of many; every field adds up."""

    entries: int = 0
    records: int = 0
    bytes: int = 0
    decode_errors: int = 0
    corrupt_frames: int = 0
    skipped_bytes: int = 0
    store_errors: int = 0  # reads whose frames the docker logs store could not write (disk full)
    partial_cut_by_budget: int = 0  # open partial lines sent as pieces: the memory budget was full
    # The processing steps of containers that set any (multiline, parse=json): every
    # counter of logdriver._native.PROCESSING_COUNTERS by name; a counter never counted is absent.
    processing: Counter[str] = field(default_factory=Counter)


class Totals:
    def __init__(self) -> None:
        self.fifos = FifoStatistics()
        self.sinks: dict[str, PipelineCounters] = {}
        self.requests: dict[str, tuple[int, int]] = {}  # sink → (requests, lines) of finished senders

    def fold_fifo(self, fifo: FifoStatistics) -> None:
        """Add a closed FIFO's final counts."""
        self.fifos.add(fifo)

    def fold_pipeline(self, pipeline: SinkPipeline) -> None:
        """Add a finished pipeline's final counts (it may finish long after its FIFO)."""
        self.sinks.setdefault(pipeline.sink, PipelineCounters()).add(pipeline.counters)

    def fold_sender(self, sender: SenderStatistics) -> None:
        """Add a finished sender's request counts."""
        before = self.requests.get(sender.sink, (0, 0))
        self.requests[sender.sink] = (before[0] + sender.requests, before[1] + sender.request_lines)

    def sink_statistics(self) -> dict[str, PipelineStatistics]:
        """The finished pipelines' and senders' counters per sink (a copy the caller adds live ones to)."""
        out = {name: PipelineStatistics(totals=dataclasses.replace(total)) for name, total in self.sinks.items()}
        for name, (requests, lines) in self.requests.items():
            snap = out.setdefault(name, PipelineStatistics())
            snap.requests, snap.request_lines = requests, lines
        return out

"""What a pipeline reports: its counters (they add up over pipelines, finished ones too)
and its statistics record (counters and gauges at a moment, summed per sink for ``/metrics``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from logdriver._counters import Counters


@dataclass(slots=True)
class PipelineCounters(Counters):
    """Counters; every field adds up across pipelines."""

    lines_in: int = 0
    lines_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    send_failures: int = 0
    spilled: int = 0  # queued on disk because memory was full (buffer=hybrid); delivered as the rest


@dataclass(slots=True)
class PipelineStatistics:
    """One pipeline, or one sink across containers, at a moment: counters and gauges."""

    totals: PipelineCounters = dataclasses.field(default_factory=PipelineCounters)
    buffer_lines: int = 0
    buffer_bytes: int = 0
    spool_bytes: int = 0
    oldest_age: float = 0.0
    failing_for: float = 0.0  # longest current run of failed sends
    operator_failing_for: float = 0.0  # the same, to plugin-wide destinations only (/health's status)
    requests: int = 0  # requests sent to destinations (first attempts; a request carries many containers)
    request_lines: int = 0  # lines in those requests
    draining: int = 0  # pipelines whose FIFO ended and that still deliver

    def add(self, other: PipelineStatistics) -> None:
        self.totals.add(other.totals)
        self.requests += other.requests
        self.request_lines += other.request_lines
        self.buffer_lines += other.buffer_lines
        self.buffer_bytes += other.buffer_bytes
        self.spool_bytes += other.spool_bytes
        self.oldest_age = max(self.oldest_age, other.oldest_age)
        self.failing_for = max(self.failing_for, other.failing_for)
        self.operator_failing_for = max(self.operator_failing_for, other.operator_failing_for)
        self.draining += other.draining

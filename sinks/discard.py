"""Discard sink: takes every batch and throws it away.

For benchmarks (the cost of the pipeline without a destination) and for
containers whose lines should only be counted and kept for ``docker logs``.
"""

from __future__ import annotations

from logdriver import LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream


class DiscardSink(Sink):
    name = "discard"

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscardSink:
        return cls()

    def open_stream(self, context: ContainerContext, client: None = None) -> SinkStream:
        return DiscardStream()


class DiscardStream(SinkStream):
    async def send_batch(self, batch: LogBatch) -> SendResult:
        return DELIVERED

    async def aclose(self) -> None:
        return None

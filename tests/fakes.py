"""Fake sinks for tests. Named fakes: no sink is ever tested only against these."""

from __future__ import annotations

import trio

from logdriver import LogBatch, LogRecord, records_of
from logdriver.abc import DELIVERED, SendResult, SinkStream


class FakeStream(SinkStream):
    """Records what it is sent; can be told to stall, fail all, or fail some."""

    def __init__(self) -> None:
        self.delivered: list[LogRecord] = []
        self.attempts: list[tuple[float, int]] = []  # (time, batch size) of every send
        self.fail_times = 0  # the next N sends fail whole
        self.retry_after: float | None = None  # what those failures ask (HTTP's Retry-After)
        self.reject: dict[bytes, str] = {}  # lines refused for good, with the reason
        self.retry_lines: set[bytes] = set()  # lines refused once each, then taken
        self.stalled = trio.Event()
        self.stalled.set()  # set: not stalled
        self.closed = False

    def stall(self) -> None:
        self.stalled = trio.Event()

    def resume(self) -> None:
        self.stalled.set()

    async def send_batch(self, batch: LogBatch) -> SendResult:
        self.attempts.append((trio.current_time(), len(batch)))
        await self.stalled.wait()
        records = records_of(batch)
        if self.fail_times:
            self.fail_times -= 1
            return SendResult.retry_all(len(batch), self.retry_after)
        retry, rejected = [], {}
        for index, record in enumerate(records):
            if record.line in self.reject:
                rejected[index] = self.reject[record.line]
            elif record.line in self.retry_lines:
                self.retry_lines.discard(record.line)
                retry.append(index)
            else:
                self.delivered.append(record)
        return SendResult(retry=retry, rejected=rejected) if retry or rejected else DELIVERED

    async def aclose(self) -> None:
        self.closed = True

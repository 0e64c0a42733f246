"""FakeNetSink: a test-only sink that ships text lines over TCP and waits for an ack.

Loaded into the plugin with LOGDRIVER_SINK_CLASSES; its peer is FakePeer in the
test process, which can be stopped and started to play a dead destination.
Wire format: per batch, the lines joined by newlines, then an empty line; the
peer answers ``ok\\n``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar

import trio

from logdriver import LogBatch, Settings, records_of
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream


class FakeNetSink(Sink):
    name = "fakenet"
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"retry-initial": "100ms", "retry-max-delay": "500ms"}

    def __init__(self, port: int) -> None:
        self.port = port

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeNetSink:
        return cls(int(os.environ["FAKENET_PORT"]))

    def open_stream(self, context: ContainerContext, client: object = None) -> SinkStream:
        return FakeNetStream(self.port)


class FakeNetStream(SinkStream):
    def __init__(self, port: int) -> None:
        self.port = port
        self.stream: trio.SocketStream | None = None

    async def send_batch(self, batch: LogBatch) -> SendResult:
        try:
            with trio.fail_after(2):
                if self.stream is None:
                    self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                await self.stream.send_all(b"".join(record.line + b"\n" for record in records_of(batch)) + b"\n")
                reply = await self.stream.receive_some(16)
            if reply != b"ok\n":
                raise OSError("no ack")
            return DELIVERED
        except (OSError, trio.BrokenResourceError, trio.TooSlowError):
            if self.stream is not None:
                await self.stream.aclose()
            self.stream = None
            return SendResult.retry_all(len(batch))

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()

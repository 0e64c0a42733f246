"""A panic in native code ends only the FIFO or request it came from (issue 30, "also
seen"): PyO3 raises a Rust panic as ``pyo3_runtime.PanicException``, a ``BaseException``,
which ``except Exception`` let through to end the plugin. A stand-in of that class (same
name and module: one class per extension, told apart by name) is raised here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from logdriver import LogBatch
from logdriver._exceptions import is_native_panic
from logdriver.abc import SendResult
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from ..fakes import FakeStream
from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until

PanicException = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})


def test_a_panic_is_told_by_its_name() -> None:
    assert is_native_panic(PanicException("boom"))
    assert not is_native_panic(KeyboardInterrupt())


class PanickingStage:
    """The processing stage of one container, panicking as a Rust bug would."""

    def __init__(self, stage: Any) -> None:
        self.stage = stage

    def process(self, batch: LogBatch, now: float) -> LogBatch:
        raise PanicException("index out of bounds")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)


async def test_a_panicking_stage_ends_its_fifo_only(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    bad_path, bad = daemon_fifo(tmp_path, "bad")
    good_path, good = daemon_fifo(tmp_path, "good")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(bad_path, container("a", sinks="fake", parse="json")))
        await driver.start_logging(StartLogging(good_path, container("b", sinks="fake", parse="json")))
        fifo = driver._fifos[bad_path]
        fifo._stage = PanickingStage(fifo._stage)  # type: ignore[assignment]
        os.write(bad, frames(encode_entry("stdout", 1, b'{"a":1}')))
        await wait_until(lambda: fifo.failed)
        os.write(good, frames(*(encode_entry("stdout", n, b'{"n":%d}' % n) for n in range(10))))
        await wait_until(lambda: len(kind.streams[1].delivered) == 10)
        await driver.stop_logging(StopLogging(good_path))
        for fd in (bad, good):
            os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        nursery.cancel_scope.cancel()


class PanicOnce(FakeStream):
    def __init__(self) -> None:
        super().__init__()
        self.panicked = False

    async def send_batch(self, batch: LogBatch) -> SendResult:
        if not self.panicked:
            self.panicked = True
            raise PanicException("renderer bug")
        return await super().send_batch(batch)


class PanicKind(FakeSinkKind):
    def open_stream(self, context: Any, client: Any = None) -> FakeStream:
        self.streams.append(PanicOnce())
        return self.streams[-1]


async def test_a_panicking_sink_is_retried_and_the_plugin_goes_on(tmp_path: Path) -> None:
    kind = PanicKind()
    driver = fake_driver(tmp_path, kind, LOGDRIVER_RETRY_INITIAL="10ms", LOGDRIVER_RETRY_MAX_DELAY="10ms")
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", sinks="fake")))
        os.write(fd, frames(*(encode_entry("stdout", n, b"line %d" % n) for n in range(5))))
        await wait_until(lambda: len(kind.streams[0].delivered) == 5)
        assert kind.streams[0].panicked
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        nursery.cancel_scope.cancel()

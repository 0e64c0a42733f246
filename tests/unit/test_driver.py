"""The Driver on real FIFOs (os.mkfifo), without Docker: start, drain, stop, resume."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry, generate_latest

from logdriver import ConfigError, PartialInfo
from logdriver.abc import ContainerContext, Sink, SinkStream
from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.metrics import DriverCollector, health
from logdriver.server.rpc import ReadLogs, StartLogging, StopLogging
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry, encode_frame
from logdriver_sinks.file import FileSink

from ..fakes import FakeStream

CID = "f" * 64


def info(**opts: str) -> dict[str, object]:
    return {"ContainerID": CID, "ContainerName": "/web", "ContainerImageName": "busybox", "Config": opts}


def container(cid: str, **opts: str) -> dict[str, object]:
    """The daemon's Info of a container whose ID is ``cid`` repeated, named ``/cid``."""
    return {"ContainerID": cid * 64, "ContainerName": f"/{cid}", "ContainerImageName": "busybox", "Config": opts}


def make_driver(tmp_path: Path) -> Driver:
    settings = Settings.from_env({"LOGDRIVER_STATE_DIR": str(tmp_path), "LOGDRIVER_GC_INTERVAL": "0s"})
    store = LogStore(str(tmp_path / "store"), settings.store_max_bytes)
    return Driver(
        settings, {"file": FileSink.from_settings(settings)}, store, FifoRegistry(str(tmp_path / "fifos.json"))
    )


def daemon_fifo(tmp_path: Path, name: str = "fifo1") -> tuple[str, int]:
    """A FIFO opened the way dockerd does: O_RDWR, so the reader sees EOF only when we close."""
    path = str(tmp_path / name)
    os.mkfifo(path, 0o600)
    return path, os.open(path, os.O_RDWR)


def frames(*entries: bytes) -> bytes:
    return b"".join(encode_frame(e) for e in entries)


async def wait_until(predicate: object) -> None:
    """Poll: the driver has no event for "FIFO closed", and tests should not add one.

    The deadline is in real time: FIFOs are read by an OS thread, which a test's
    virtual clock does not slow down."""
    deadline = time.monotonic() + 10
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await trio.sleep(0.001)


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[Driver]:
    driver = make_driver(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        yield driver
        nursery.cancel_scope.cancel()


async def test_start_drain_stop(driver: Driver, tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    await driver.start_logging(StartLogging(path, info(tag="{{.Name}}")))
    assert path in driver.registry.entries()
    chunks = [b"x" * 16384, b"x" * 16384, b"tail"]
    os.write(fd, frames(encode_entry("stdout", 1, b"hello"), encode_entry("stderr", 2, b"oops")))
    os.write(fd, frames(*(encode_entry("stdout", 3, c, PartialInfo("p", i + 1, i == 2)) for i, c in enumerate(chunks))))
    await driver.stop_logging(StopLogging(path))  # answered at once; the reader drains to EOF
    os.close(fd)
    await wait_until(lambda: driver.statistics().active_fifos == 0)
    records = [orjson.loads(line) for line in (tmp_path / "files" / f"{CID[:12]}-web.log").read_bytes().splitlines()]
    assert [(r["stream"], r["message"], r["tag"]) for r in records] == [
        ("stdout", "hello", "web"),
        ("stderr", "oops", "web"),
        ("stdout", "x" * 32768 + "tail", "web"),
    ]
    assert driver.registry.entries() == {}
    body = b"".join([chunk async for chunk in driver.read_logs(ReadLogs(info(), None, None, 2, False))])
    assert b"tail\n" in body
    assert b"oops" not in body  # tail=2 counts Docker's entries: the last chunk and the one before


async def test_bad_option_fails_start_and_registers_nothing(driver: Driver, tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    with pytest.raises(ConfigError, match="file-format"):
        await driver.start_logging(StartLogging(path, info(**{"file-format": "xml"})))
    assert driver.registry.entries() == {}
    assert driver.statistics().active_fifos == 0
    os.close(fd)


async def test_corrupt_bytes_are_skipped_and_the_stream_continues(driver: Driver, tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    await driver.start_logging(StartLogging(path, info()))
    os.write(fd, b"\xff\xff\xff\xffgarbage" + frames(encode_entry("stdout", 1, b"after garbage")))
    os.close(fd)
    await wait_until(lambda: driver.statistics().active_fifos == 0)
    text = (tmp_path / "files" / f"{CID[:12]}-web.log").read_text()
    assert '"message":"after garbage"' in text


async def test_restarted_plugin_resumes_registered_fifos(tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    first = make_driver(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first.start_logging(StartLogging(path, info()))
        os.write(fd, frames(encode_entry("stdout", 1, b"before")))
        await wait_until(lambda: (tmp_path / "files" / f"{CID[:12]}-web.log").exists())
        nursery.cancel_scope.cancel()  # the plugin stops (SIGTERM); the FIFO stays registered
    assert path in FifoRegistry(str(tmp_path / "fifos.json")).entries()
    os.write(fd, frames(encode_entry("stdout", 2, b"while down")))  # waits in the pipe
    second = make_driver(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)  # no StartLogging: resumed from the registry
        os.write(fd, frames(encode_entry("stdout", 3, b"after")))
        os.close(fd)
        await wait_until(lambda: second.statistics().active_fifos == 0)
        nursery.cancel_scope.cancel()
    text = (tmp_path / "files" / f"{CID[:12]}-web.log").read_text()
    assert [orjson.loads(line)["message"] for line in text.splitlines()] == ["before", "while down", "after"]


async def test_no_eof_after_stop_gives_up_after_the_timeout(
    driver: Driver, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path, fd = daemon_fifo(tmp_path)
    await driver.start_logging(StartLogging(path, info()))
    await driver.stop_logging(StopLogging(path))
    await trio.sleep(driver.stop_timeout + 1)  # virtual time: the writer never closes
    assert driver.statistics().active_fifos == 0
    assert driver.registry.entries() == {}
    os.close(fd)


class FakeSinkKind(Sink):
    """A sink kind whose streams are FakeStreams the test can reach."""

    name = "fake"
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"batch-max-wait": "0s", "retry-initial": "1s"}

    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> FakeSinkKind:
        return cls()

    def open_stream(self, context: ContainerContext, client: object = None) -> SinkStream:
        self.streams.append(FakeStream())
        return self.streams[-1]


def fake_driver(tmp_path: Path, kind: FakeSinkKind, **env: str) -> Driver:
    settings = Settings.from_env(
        {"LOGDRIVER_STATE_DIR": str(tmp_path), "LOGDRIVER_GC_INTERVAL": "0s", "LOGDRIVER_SINKS": "fake", **env}
    )
    store = LogStore(str(tmp_path / "store"), settings.store_max_bytes)
    return Driver(settings, {"fake": kind}, store, FifoRegistry(str(tmp_path / "fifos.json")))


async def test_metrics_and_health_see_a_failing_sink(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info()))
        kind.streams[0].fail_times = 10**9
        os.write(fd, frames(encode_entry("stdout", 1, b"one"), encode_entry("stdout", 2, b"two")))
        await wait_until(lambda: driver.statistics().fifos.records == 2)
        await trio.sleep(120)
        status, body = health(driver, failing_after=60)
        assert status == 503
        assert "fake" in orjson.loads(body)["failing_sinks_seconds"]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DriverCollector(driver))
        text = generate_latest(registry).decode()
        assert 'logdriver_sink_lines_total{outcome="in",sink="fake"} 2.0' in text
        assert 'logdriver_buffer_lines{sink="fake"}' in text
        assert "logdriver_active_fifos 1.0" in text
        kind.streams[0].fail_times = 0
        await trio.sleep(60)
        assert health(driver, failing_after=60)[0] == 200
        assert [r.line for r in kind.streams[0].delivered] == [b"one", b"two"]
        text = generate_latest(registry).decode()
        assert 'logdriver_sink_lines_total{outcome="delivered",sink="fake"} 2.0' in text
        os.close(fd)
        nursery.cancel_scope.cancel()


async def test_shutdown_flushes_sinks_and_keeps_the_fifo_registered(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        # Retry delays are random (full jitter); capped at 1 s, three of them fit in the flush time.
        await driver.start_logging(StartLogging(path, info(sinks="fake", **{"retry-max-delay": "1s"})))
        kind.streams[0].fail_times = 3  # the destination recovers during the grace period
        os.write(fd, frames(encode_entry("stdout", 1, b"queued at SIGTERM")))
        await wait_until(lambda: driver.statistics().fifos.records == 1)  # the reader thread runs in real time
        with trio.move_on_after(8):
            await driver.shutdown()
        nursery.cancel_scope.cancel()
    assert [r.line for r in kind.streams[0].delivered] == [b"queued at SIGTERM"]
    assert path in FifoRegistry(str(tmp_path / "fifos.json")).entries()
    os.close(fd)

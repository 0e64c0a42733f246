"""Multiline through the Driver on real FIFOs: the timeout, a container stopping or the
plugin shutting down mid-event, the memory budget, and the metrics."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from prometheus_client import CollectorRegistry, generate_latest

from logdriver.server.driver import Driver
from logdriver.server.metrics import DriverCollector
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from .test_driver import FakeSinkKind, daemon_fifo, fake_driver, frames, info, wait_until

JAVA = (b"java.lang.IllegalStateException: boom", b"\tat T.inner(T.java:3)", b"\tat T.main(T.java:9)")


def entries(*lines: bytes, stream: str = "stderr") -> bytes:
    return frames(*(encode_entry(stream, n + 1, line) for n, line in enumerate(lines)))


def delivered(kind: FakeSinkKind) -> list[bytes]:
    return [r.line for stream in kind.streams for r in stream.delivered]


@asynccontextmanager
async def logging_to_fake(
    tmp_path: Path, opts: dict[str, str], **env: str
) -> AsyncIterator[tuple[Driver, FakeSinkKind, str, int]]:
    """A running Driver with a fake sink, reading one FIFO started with ``opts``."""
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind, **env)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info(**opts)))
        yield driver, kind, path, fd
        nursery.cancel_scope.cancel()


async def test_an_open_event_goes_when_its_timeout_passes_and_metrics_count_it(tmp_path: Path) -> None:
    opts = {"multiline": "java", "multiline-timeout": "300ms", "parse": "json"}
    async with logging_to_fake(tmp_path, opts) as (driver, kind, _, fd):
        written = time.monotonic()
        os.write(fd, entries(*JAVA))
        await wait_until(lambda: delivered(kind))
        waited = time.monotonic() - written
        assert delivered(kind) == [b"\n".join(JAVA)]
        assert 0.3 <= waited < 3.0  # sent by the timeout: nothing else came
        os.write(fd, entries(b'{"level":"warn","msg":"json"}', b"plain"))
        await wait_until(lambda: len(delivered(kind)) == 3)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DriverCollector(driver))
        text = generate_latest(registry).decode()
        assert 'logdriver_processing_events_total{outcome="multiline_timed_out"} 1.0' in text
        assert 'logdriver_processing_events_total{outcome="multiline_lines"} 3.0' in text
        mine = 'container_id="ffffffffffff",container_name="web"'
        assert f'logdriver_container_processing_events_total{{{mine},outcome="json_parsed"}} 1.0' in text
        assert f'logdriver_container_processing_events_total{{{mine},outcome="json_unparsed"}} 1.0' in text
        os.close(fd)


async def test_a_container_stopping_mid_event_sends_what_it_holds(tmp_path: Path) -> None:
    async with logging_to_fake(tmp_path, {"multiline": "java", "multiline-timeout": "60s"}) as (driver, kind, path, fd):
        os.write(fd, entries(*JAVA[:2]))
        await wait_until(lambda: driver.statistics().fifos.entries == 2)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: delivered(kind))
        assert delivered(kind) == [b"\n".join(JAVA[:2])]


async def test_a_plugin_shutdown_mid_event_sends_what_it_holds(tmp_path: Path) -> None:
    async with logging_to_fake(tmp_path, {"multiline": "java", "multiline-timeout": "60s"}) as (driver, kind, _, fd):
        os.write(fd, entries(*JAVA))
        await wait_until(lambda: driver.statistics().fifos.entries == 3)
        with trio.move_on_after(10):
            await driver.shutdown()
    assert delivered(kind) == [b"\n".join(JAVA)]
    os.close(fd)


async def test_the_memory_budget_sends_open_events_early_marked(tmp_path: Path) -> None:
    opts = {
        "multiline-continue": r"^\s",
        "multiline-max-bytes": "64m",
        "multiline-max-lines": "100000",
        "multiline-timeout": "60s",
        "overflow": "block",
    }
    async with logging_to_fake(tmp_path, opts, LOGDRIVER_MEMORY_MAX_BYTES="1m") as (driver, kind, path, fd):
        lines = [b"first"] + [b" " + b"x" * 10_000] * 300  # 3 MB in one event: more than the budget
        for start in range(0, len(lines), 50):  # the budget is charged per read: several reads
            os.write(fd, entries(*lines[start : start + 50]))
            await wait_until(lambda: driver.statistics().fifos.entries == min(start + 50, len(lines)))  # noqa: B023
        await wait_until(lambda: driver.statistics().fifos.processing["multiline_cut_by_budget"] >= 1)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: b"\n".join(delivered(kind)) == b"\n".join(lines))
        assert len(delivered(kind)) >= 3  # each under the 1 MB budget

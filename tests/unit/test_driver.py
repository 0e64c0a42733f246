"""The Driver on real FIFOs (os.mkfifo), without Docker: start, drain, stop, resume."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from logdriver import ConfigError, PartialInfo, encode_entry, encode_frame
from logdriver._driver import Driver
from logdriver._options import Settings
from logdriver._registry import FifoRegistry
from logdriver._rpc import ReadLogs, StartLogging, StopLogging
from logdriver._store import LogStore
from sinks.file import FileSink

CID = "f" * 64


def info(**opts: str) -> dict[str, object]:
    return {"ContainerID": CID, "ContainerName": "/web", "ContainerImageName": "busybox", "Config": opts}


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
    """Poll: the driver has no event for "FIFO closed", and tests should not add one."""
    with trio.fail_after(5):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.01)


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
    await wait_until(lambda: driver.active_fifos == 0)
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
    assert driver.active_fifos == 0
    os.close(fd)


async def test_corrupt_bytes_are_skipped_and_the_stream_continues(driver: Driver, tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    await driver.start_logging(StartLogging(path, info()))
    os.write(fd, b"\xff\xff\xff\xffgarbage" + frames(encode_entry("stdout", 1, b"after garbage")))
    os.close(fd)
    await wait_until(lambda: driver.active_fifos == 0)
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
        await wait_until(lambda: second.active_fifos == 0)
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
    assert driver.active_fifos == 0
    assert driver.registry.entries() == {}
    os.close(fd)

"""A neighbour's rotations never hold back a container's lines (issue 30, finding 13): the
file sink's one shared worker waited for each container's rotations, and a neighbour with
``file-max-size=500k``, ``file-max-file=1000`` took a bystander's line-to-file delay from
21 ms to 225 ms. Each container's file now has its own worker."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import trio

from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry
from logdriver_sinks.file import FileSink, FileStream

from .test_driver import container, daemon_fifo, frames, wait_until


async def test_a_rotation_that_hangs_holds_back_only_its_own_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    rotate = FileStream._rotate

    def slow_rotate(self: FileStream) -> None:
        if "-a.log" in self.path:
            release.wait(30)  # the hostile container's rotation: a thousand renames on a slow disk
        rotate(self)

    monkeypatch.setattr(FileStream, "_rotate", slow_rotate)
    settings = Settings.from_env({"LOGDRIVER_STATE_DIR": str(tmp_path), "LOGDRIVER_GC_INTERVAL": "0s"})
    store = LogStore(str(tmp_path / "store"), settings.store_max_bytes)
    driver = Driver(settings, {"file": FileSink.from_settings(settings)}, store, FifoRegistry(str(tmp_path / "f.json")))
    hostile_path, hostile = daemon_fifo(tmp_path, "hostile")
    by_path, bystander = daemon_fifo(tmp_path, "bystander")
    files = tmp_path / "files"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            opts = {"file-max-size": "1k", "file-max-file": "3"}
            await driver.start_logging(StartLogging(hostile_path, container("a", **opts)))
            await driver.start_logging(StartLogging(by_path, container("b")))
            os.write(hostile, frames(*(encode_entry("stdout", n, b"x" * 100) for n in range(50))))
            await wait_until(lambda: (files / f"{'a' * 12}-a.log").exists())
            os.write(bystander, frames(encode_entry("stdout", 1, b"bystander line")))
            await wait_until(lambda: b"bystander line" in _read(files / f"{'b' * 12}-b.log"))
            assert not release.is_set()  # written while the neighbour's rotation still hangs
            release.set()
            for path, fd in ((hostile_path, hostile), (by_path, bystander)):
                await driver.stop_logging(StopLogging(path))
                os.close(fd)
            await wait_until(lambda: not driver.deliveries.live)
            nursery.cancel_scope.cancel()
    finally:
        release.set()
        store.close()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""

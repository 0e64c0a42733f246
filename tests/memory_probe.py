"""Run the real Driver in this process and report its peak memory against the budget.

``python -m tests.memory_probe CONTAINERS MEGABYTES [partial]``: that many containers
each write that many megabytes of 200-byte lines (``partial``: one line of that size,
in Docker's 16 KiB pieces) to the Fluentd sink at an address where nothing listens, so
every line stays queued until the memory budget is full. Prints one JSON object:
the budget, its peak, and the process's peak RSS over its RSS before the first line.
Used by tests/unit/test_memory_budget.py; a subprocess, so that pytest's own memory
and other tests' garbage do not count.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import orjson
import trio

from logdriver import PartialInfo
from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry, encode_frame
from logdriver_sinks.fluentd import FluentdSink

BUDGET = "64Mi"


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM starts again from the current RSS


def chunks(index: int, megabytes: int, partial: bool) -> list[bytes]:
    """One container's frames, as writes of about 1 MiB."""
    if partial:
        piece = b"p" * 16_384
        count = megabytes * 64
        entries = [
            encode_frame(encode_entry("stdout", i, piece, PartialInfo(f"c{index}", i + 1, i == count - 1)))
            for i in range(count)
        ]
    else:
        line = b"%03d " % index + b"x" * 195
        entries = [encode_frame(encode_entry("stdout", i, line + b"\n")) for i in range(megabytes * 5_000)]
    out, current, size = [], [], 0
    for entry in entries:
        current.append(entry)
        size += len(entry)
        if size >= 1 << 20:
            out.append(b"".join(current))
            current, size = [], 0
    out.append(b"".join(current))
    return out


async def main(containers: int, megabytes: int, partial: bool, sinks: str) -> dict[str, int]:
    state = tempfile.mkdtemp(prefix="memory-probe-")
    settings = Settings.from_env(
        {
            "LOGDRIVER_STATE_DIR": state,
            "LOGDRIVER_MEMORY_MAX_BYTES": BUDGET,
            "LOGDRIVER_FLUENTD_ADDRESS": "tcp://127.0.0.1:1",  # nothing listens: every line stays queued
            "LOGDRIVER_STORE_MAX_BYTES": "64m",
        }
    )
    store = LogStore(os.path.join(state, "store"), settings.store_max_bytes)
    driver = Driver(settings, {"fluentd": FluentdSink()}, store, FifoRegistry(os.path.join(state, "fifos.json")))
    payloads = [chunks(i, megabytes, partial) for i in range(containers)]
    fifos = []
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for i in range(containers):
            path = os.path.join(state, f"fifo{i}")
            os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDWR)
            container = {
                "ContainerID": f"{i + 1:064x}",
                "ContainerName": f"/c{i}",
                "ContainerImageName": "busybox",
                "Config": {"sinks": sinks, "partial-max-size": "64m", "buffer": "memory", "buffer-max-bytes": "1g"},
            }
            await driver.start_logging(StartLogging(path, container))
            fifos.append((path, fd))
        reset_peak()
        before = rss_kib("VmRSS")

        def write(fd: int, data: list[bytes]) -> None:
            for chunk in data:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]

        writers = [
            threading.Thread(target=write, args=(fd, data)) for (_, fd), data in zip(fifos, payloads, strict=True)
        ]
        for thread in writers:
            thread.start()
        while any(thread.is_alive() for thread in writers):  # noqa: ASYNC110 - threads, not tasks
            await trio.sleep(0.05)
        await trio.sleep(1.0)  # the last reads decoded and queued
        peak = rss_kib("VmHWM")
        result = {
            "budget": driver.memory.limit,
            "budget_peak": driver.memory.peak,
            "rss_growth": (peak - before) * 1024,
            "lines_in": driver.statistics().sinks["fluentd"].totals.lines_in,
            "dropped": driver.statistics().sinks["fluentd"].totals.dropped,
            "cut_by_budget": sum(f.statistics().partial_cut_by_budget for f in driver._fifos.values()),
        }
        for path, fd in fifos:
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        nursery.cancel_scope.cancel()
    return result


if __name__ == "__main__":
    count, size = int(sys.argv[1]), int(sys.argv[2])
    sinks = os.environ.get("SINKS", "fluentd")  # "none": the decoding and store alone
    print(orjson.dumps(trio.run(main, count, size, "partial" in sys.argv[3:], sinks)).decode())

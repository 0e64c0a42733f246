"""A new operator policy on many running containers (issue 34), in process, on real FIFOs.

N containers each write a line every 10 ms while a policy that gives every one of them a
rate limit and redaction is written to ``policy.yaml``, then one that takes them away.
Printed: the switch itself (``logdriver_policy_load_seconds``: parse, validate every
container, switch), the time from the file's rename to the policy being in force (the
plugin looks every 0.5 s; target <= 2 s), and what the writers' lines saw meanwhile (all
accounted for). Docker has nothing to compare with: its only way is to recreate the
containers, which restarts them.

Usage: python bench/switch_bench.py [--containers 50,200,1000]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry, encode_frame
from logdriver_sinks.discard import DiscardSink

ON = "rules: [{name: all, match: {label: {app: '~svc-.*'}}, enforce: {rate-limit: 1000/s, redact: all}}]"
OFF = "rules: []"


def write_policy(state: Path, text: str) -> float:
    tmp = state / "policy.new"
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(state / "policy.yaml")
    return time.monotonic()


def taken(driver: Driver, generation: int) -> bool:
    return driver.live_policy.generation >= generation


async def until(done: Callable[[], bool], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the plugin did not get there in 60 s")
        await trio.sleep(0.005)


async def one_size(count: int) -> tuple[float, float, float, float, float, float]:
    with tempfile.TemporaryDirectory() as directory:
        state = Path(directory)
        env = {"LOGDRIVER_STATE_DIR": directory, "LOGDRIVER_GC_INTERVAL": "0s", "LOGDRIVER_SINKS": "discard"}
        settings = Settings.from_env(env)
        store = LogStore(str(state / "store"), settings.store_max_bytes)
        driver = Driver(settings, {"discard": DiscardSink()}, store, FifoRegistry(str(state / "fifos.json")))
        fds = []
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            for n in range(count):
                path = str(state / f"fifo{n}")
                os.mkfifo(path, 0o600)
                fds.append((path, os.open(path, os.O_RDWR | os.O_NONBLOCK)))
                info = {
                    "ContainerID": f"{n:012x}" + "0" * 52,
                    "ContainerName": f"/svc-{n}",
                    "ContainerLabels": {"app": f"svc-{n % 7}"},
                    "Config": {},
                }
                await driver.start_logging(StartLogging(path, info))

            async def writers() -> None:
                seq = 0
                while True:
                    seq += 1
                    frame = encode_frame(encode_entry("stdout", seq, b"req %d password=hunter2" % seq))
                    for _, fd in fds:
                        os.write(fd, frame)
                    await trio.sleep(0.01)

            writing = trio.CancelScope()

            async def write_until_cancelled() -> None:
                with writing:
                    await writers()

            nursery.start_soon(write_until_cancelled)
            await trio.sleep(1)
            timings = []
            lag = [0.0]

            async def probe() -> None:  # the event loop's longest stall: a 1 ms sleep that wakes late
                while True:
                    before = time.monotonic()
                    await trio.sleep(0.001)
                    lag[0] = max(lag[0], time.monotonic() - before - 0.001)

            nursery.start_soon(probe)
            for generation, text in ((1, ON), (2, OFF)):
                lag[0] = 0.0
                written = write_policy(state, text)
                await until(functools.partial(taken, driver, generation))
                timings += [time.monotonic() - written, driver.live_policy.load_seconds, lag[0]]
                await trio.sleep(1)
            writing.cancel()
            for path, fd in fds:
                await driver.stop_logging(StopLogging(path))
                os.close(fd)
            await until(lambda: not (driver.statistics().active_fifos or driver.deliveries.live))
            nursery.cancel_scope.cancel()
        return tuple(timings)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", default="50,200,1000")
    args = parser.parse_args()
    print("containers  in force after (on / off)  the switch (on / off)  longest event-loop stall (on / off)")
    worst = 0.0
    for count in map(int, args.containers.split(",")):
        on_live, on_load, on_lag, off_live, off_load, off_lag = trio.run(one_size, count)
        worst = max(worst, on_live, off_live)
        print(
            f"{count:>10}  {on_live:8.2f} s / {off_live:.2f} s  {on_load * 1000:8.0f} ms / {off_load * 1000:.0f} ms"
            f"  {on_lag * 1000:12.0f} ms / {off_lag * 1000:.0f} ms"
        )
    print(f"target: in force within 2 s: {'met' if worst <= 2 else 'MISSED'} (worst {worst:.2f} s)")
    sys.exit(0)


if __name__ == "__main__":
    main()

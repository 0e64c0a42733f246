"""A container's patterns and JSON cannot spend the event loop (issue 30, finding 1).

``multiline-start='[ab]{0,2500}X|[ab]{0,2500}Y'`` passed the compile caps and cost about
55 s of CPU per MiB of line, on the event loop with the GIL held: ``Plugin.Activate``
went unanswered for 45 s. Now the pattern's program is capped lower (that one is refused),
a pattern that compiles is matched by a lazy DFA that gives up at a constant cost per
byte, the stage runs in a worker thread without the GIL, and each container has a CPU
allowance past which its lines go on unprocessed, counted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import trio

from logdriver import ConfigError, LogRecord, batch_of
from logdriver._native import PROCESSING_CPU
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry, stage_for

from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until

AUDITED = "[ab]{0,2500}X|[ab]{0,2500}Y"
COSTLY = "[ab]{0,1000}X|[ab]{0,1000}Y"  # just under the program cap: the costliest that compiles
LINE = b"ab" * 8000  # 16,000 bytes: as long as a line goes before Docker splits it


def test_the_audited_pattern_is_refused_when_the_container_starts() -> None:
    with pytest.raises(ConfigError, match=r"multiline-start.*size limit"):
        stage_for({"multiline-start": AUDITED})


def test_a_costly_pattern_costs_a_bounded_time_per_line_and_counts_it() -> None:
    stage = stage_for({"multiline-start": COSTLY})
    batch = batch_of([LogRecord("stdout", n, LINE) for n in range(64)])  # 1 MiB
    started = time.process_time()
    out = stage.process(batch, 0.0)
    spent = time.process_time() - started
    counts = stage.statistics()
    assert len(out) == 64  # every line leaves, one record each (none joined: none starts an event)
    assert counts["multiline_pattern_gave_up"] + counts["processing_over_cpu_budget"] == 64
    # The CPU allowance: a burst, then nothing more in the same instant (the audit: 55 s).
    assert spent < PROCESSING_CPU[1] + 0.5
    assert not stage.cheap  # its next reads go to the worker threads, however small


def test_an_ordinary_stage_stays_cheap() -> None:
    stage = stage_for({"multiline": "java", "parse": "json"})
    lines = [b"2026-12-06 INFO started", b'{"level":"info","msg":"ok"}', b"\tat T.main(T.java:9)"] * 100
    stage.process(batch_of([LogRecord("stdout", n, line) for n, line in enumerate(lines)]), 0.0)
    assert stage.cheap  # small reads of it are processed on the loop


@pytest.mark.alone
async def test_a_costly_pattern_leaves_the_loop_and_a_bystander_alone(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    hostile_path, hostile = daemon_fifo(tmp_path, "hostile")
    bystander_path, bystander = daemon_fifo(tmp_path, "bystander")
    worst_lag = 0.0

    async def measure_lag() -> None:
        nonlocal worst_lag
        while True:
            asked = time.monotonic()
            await trio.sleep(0.005)
            worst_lag = max(worst_lag, time.monotonic() - asked - 0.005)

    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        with pytest.raises(ConfigError, match="multiline-start"):
            await driver.start_logging(StartLogging(hostile_path, container("a", **{"multiline-start": AUDITED})))
        await driver.start_logging(StartLogging(hostile_path, container("a", **{"multiline-start": COSTLY})))
        await driver.start_logging(StartLogging(bystander_path, container("b")))
        nursery.start_soon(measure_lag)
        hostile_lines = 320  # 5 MiB: about 40 minutes of the loop's time before
        async with trio.open_nursery() as writers:

            async def write_hostile() -> None:
                for n in range(hostile_lines):
                    await trio.to_thread.run_sync(os.write, hostile, frames(encode_entry("stdout", n, LINE)))

            writers.start_soon(write_hostile)
            for n in range(200):
                os.write(bystander, frames(encode_entry("stdout", n, b"bystander %d" % n)))
                await trio.sleep(0.005)
        for path, fd in ((hostile_path, hostile), (bystander_path, bystander)):
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        await wait_until(lambda: sum(len(s.delivered) for s in kind.streams) == hostile_lines + 200)
        nursery.cancel_scope.cancel()
    by_container = {len(s.delivered): [r.line for r in s.delivered] for s in kind.streams if s.delivered}
    assert by_container[200] == [b"bystander %d" % n for n in range(200)]
    assert all(line == LINE for line in by_container[hostile_lines])
    assert worst_lag < 0.1, f"the event loop was held {worst_lag:.3f} s"
    fifos = driver.statistics().fifos
    gave_up = fifos.processing["multiline_pattern_gave_up"] + fifos.processing["processing_over_cpu_budget"]
    assert gave_up >= hostile_lines

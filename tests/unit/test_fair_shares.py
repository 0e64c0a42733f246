"""No container takes what its neighbours need (issue 30, finding 6): with
``buffer-max-bytes=2g`` and a destination that never answers, one queue held 67,096,100
of a 67,108,864-byte budget, and a bystander on a healthy sink lost 97 of 200 lines.
Every container draws on its share of the memory and disk budgets: at most a quarter,
and the last eighth kept for containers that hold little."""

from __future__ import annotations

import os
from pathlib import Path

import trio
import trio.lowlevel

from logdriver import LogRecord, batch_of
from logdriver.delivery.budget import RESERVE, SHARE_MAX, SMALL, Budget
from logdriver.delivery.dead_letters import DeadLetters
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until

BUDGET = 4 << 20


def test_a_share_is_capped_and_the_reserve_kept_for_small_holders() -> None:
    budget = Budget("memory", 64 << 20)
    hogs = [budget.share(f"hog{n}") for n in range(4)]
    for hog in hogs:
        while hog.try_take(1 << 20):
            pass
    assert all(hog.used <= budget.limit // SHARE_MAX for hog in hogs)
    assert budget.used <= budget.limit - budget.limit // RESERVE  # the hogs stop short of the reserve
    bystander = budget.share("bystander")
    assert bystander.try_take(budget.limit // SMALL - 1)  # a small holder still finds room
    assert budget.share("bystander") is bystander  # one share per holder while it is held


async def test_a_stuck_container_with_a_huge_queue_leaves_the_bystander_every_line(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind, LOGDRIVER_MEMORY_MAX_BYTES=str(BUDGET))
    hog_path, hog = daemon_fifo(tmp_path, "hog")
    by_path, bystander = daemon_fifo(tmp_path, "bystander")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(
            StartLogging(hog_path, container("a", sinks="fake", buffer="memory", **{"buffer-max-bytes": "1g"}))
        )
        kind.streams[0].stall()  # its destination never answers
        await driver.start_logging(StartLogging(by_path, container("b", sinks="fake")))
        for n in range(64):  # 8 MiB: twice the whole budget
            os.write(hog, frames(*(encode_entry("stdout", n, b"h" * 1000) for _ in range(128))))
            await trio.lowlevel.checkpoint()
        await wait_until(lambda: driver.statistics().fifos.records >= 64 * 128)
        assert driver.memory.used <= BUDGET // SHARE_MAX + (1 << 20)  # its share, and one read batch
        for n in range(200):
            os.write(bystander, frames(encode_entry("stdout", n, b"bystander %d" % n)))
        await wait_until(lambda: len(kind.streams[1].delivered) == 200)
        assert [r.line for r in kind.streams[1].delivered] == [b"bystander %d" % n for n in range(200)]
        assert driver.statistics().sinks["fake"].totals.dropped > 0  # the hog's own overflow, counted
        for path, fd in ((hog_path, hog), (by_path, bystander)):
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        kind.streams[0].resume()
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        nursery.cancel_scope.cancel()


def test_one_containers_dead_letters_never_rotate_a_neighbours_away(tmp_path: Path) -> None:
    """Finding 11: one file per sink, 64 MiB then ``.1``: one container's refusals rotated
    a bystander's dead letters away within 10 s. Now each container has its own file."""
    letters = DeadLetters(str(tmp_path), "s", max_bytes=20_000, budget=Budget("disk", 1 << 30))
    bystander, hostile = "b" * 64, "a" * 64
    letters.write(batch_of([LogRecord("stdout", 1, b"keep me")]), bystander, ["refused"])
    for _ in range(100):
        letters.write(batch_of([LogRecord("stdout", 1, b"x" * 1000)] * 5), hostile, ["refused"] * 5)
    kept = (tmp_path / "s" / f"{bystander}.jsonl").read_bytes()
    assert b"keep me" in kept
    assert (tmp_path / "s" / f"{hostile}.jsonl.1").exists()  # the hostile one rotated its own

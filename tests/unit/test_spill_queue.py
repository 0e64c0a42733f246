"""buffer=hybrid: a memory queue that spills onto disk when full, in order, within its budgets."""

from __future__ import annotations

import os
import random
import shutil
import stat
import tempfile
from pathlib import Path

import trio
import trio.lowlevel
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from logdriver import LogRecord, batch_of, records_of
from logdriver.config.pipeline_options import Overflow, pipeline_options
from logdriver.delivery.budget import SHARE_MAX, Budget
from logdriver.delivery.memory_queue import BatchQueue
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.sender import run_alone
from logdriver.delivery.spill_queue import SpillQueue
from logdriver.delivery.spool import DiskQueue
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from ..fakes import FakeStream
from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until


def texts_of(batch: object) -> list[bytes]:
    return [r.line for r in records_of(batch)]  # type: ignore[arg-type]


def spill_queue(directory: str, max_entries: int, spill_bytes: int = 1 << 30) -> SpillQueue:
    memory = BatchQueue(1 << 20, max_entries, Overflow.BLOCK)
    return SpillQueue(
        memory,
        lambda: DiskQueue(directory, spill_bytes, 1 << 40, Overflow.DROP_NEWEST, segment_bytes=300, durable=False),
        directory,
    )


class SpillModel(RuleBasedStateMachine):
    """Against a list: every line offered comes out once, in order, whichever part held it."""

    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="spill-")
        self.queue = spill_queue(os.path.join(self.root, "spill"), max_entries=5)
        self.offered: list[bytes] = []
        self.taken: list[bytes] = []
        self.serial = 0

    @rule(count=st.integers(1, 4))
    def offer(self, count: int) -> None:
        lines = [b"%d" % (self.serial + i) for i in range(count)]
        self.serial += count
        offer = self.queue.offer(batch_of([LogRecord("stdout", 1, line) for line in lines]), 0.0)
        assert (offer.accepted, offer.dropped, offer.must_wait) == (count, 0, False)
        self.offered += lines

    @rule(limit=st.integers(1, 6))
    def take(self, limit: int) -> None:
        batch = self.queue.take(limit, 1 << 20)
        if batch is not None:
            self.taken += texts_of(batch)

    @rule()
    def ack(self) -> None:
        self.queue.ack()

    @invariant()
    def in_order_and_once(self) -> None:
        assert self.taken == self.offered[: len(self.taken)]
        assert self.queue.entries == len(self.offered) - len(self.taken)

    def teardown(self) -> None:
        self.queue.close(0)
        assert not os.path.exists(os.path.join(self.root, "spill"))  # a closed spill leaves no file
        shutil.rmtree(self.root)


TestSpillModel = SpillModel.TestCase
TestSpillModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_past_spill_max_bytes_the_overflow_policy_decides_counted(tmp_path: Path) -> None:
    queue = spill_queue(str(tmp_path / "spill"), max_entries=2, spill_bytes=200)
    offers = [queue.offer(batch_of([LogRecord("stdout", 1, b"x" * 40)]), 0.0) for _ in range(10)]
    assert sum(o.accepted for o in offers) + sum(o.dropped for o in offers) == 10
    assert 2 < sum(o.accepted for o in offers) < 10  # memory, then some on disk, then dropped
    assert queue.close(0) == sum(o.accepted for o in offers)  # what it held at close is counted lost


def test_spill_files_are_root_only(tmp_path: Path) -> None:
    queue = spill_queue(str(tmp_path / "spill"), max_entries=1)
    for _ in range(3):
        queue.offer(batch_of([LogRecord("stdout", 1, b"secret")]), 0.0)
    files = list((tmp_path / "spill").iterdir())
    assert files
    for path in [tmp_path / "spill", *files]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    queue.close(0)


async def test_a_burst_past_the_memory_queue_reaches_a_slow_destination_whole_and_in_order(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The default buffer: what overflowed a 100-line queue used to be dropped (drop-newest).
    stream = FakeStream()
    memory, disk = Budget("memory", 1 << 20), Budget("disk", 1 << 30)
    options = pipeline_options("fake", {}, {"buffer-max-entries": "100", "batch-max-entries": "50"}, {})
    assert options.buffer == "hybrid"
    pipeline = SinkPipeline(
        "fake",
        "c" * 64,
        stream,
        options,
        rng=random.Random(7),
        spill_dir=str(tmp_path / "spill"),
        memory=memory.share("c" * 64),
        disk=disk.share("c" * 64),
    )
    stream.stall()
    sent = [b"line %d" % n for n in range(5000)]
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        for start in range(0, len(sent), 25):
            assert pipeline.try_put(batch_of([LogRecord("stdout", 1, line) for line in sent[start : start + 25]]))
        assert pipeline.counters.dropped == 0
        assert pipeline.statistics(trio.current_time()).spool_bytes > 0  # it spilled
        assert memory.peak <= 1 << 20
        stream.resume()
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == sent
    assert pipeline.counters.dropped == 0
    assert (memory.used, disk.used) == (0, 0)
    assert not (tmp_path / "spill").exists()


# 64 reads of 128 lines of 1,000 bytes: 8.2 MB. (48 of them, 6.1 MB, was under the two shares'
# 6 MiB together: it dropped only by the queues' overheads, and once, in CI, not at all.)
WRITES = 64


async def test_in_the_driver_a_hog_spills_within_its_disk_share_and_the_bystander_gets_every_line(
    tmp_path: Path,
) -> None:
    leftover = tmp_path / "spill" / "fake" / "old"
    leftover.mkdir(parents=True)
    (leftover / "00000001.spool").write_bytes(b"from a run before")
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind, LOGDRIVER_MEMORY_MAX_BYTES="8Mi", LOGDRIVER_DISK_MAX_BYTES="16Mi")
    assert not leftover.exists()  # a spill never outlives its process
    hog_path, hog = daemon_fifo(tmp_path, "hog")
    by_path, bystander = daemon_fifo(tmp_path, "bystander")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(hog_path, container("a", sinks="fake")))
        kind.streams[0].stall()  # its destination does not answer for now
        await driver.start_logging(StartLogging(by_path, container("b", sinks="fake")))
        for n in range(WRITES):  # 8 MB: well past its memory share (2 MiB) and disk share (4 MiB) together
            os.write(hog, frames(*(encode_entry("stdout", n, b"h" * 1000) for _ in range(128))))
            await trio.lowlevel.checkpoint()
        await wait_until(lambda: driver.statistics().fifos.records >= WRITES * 128)
        spilled = driver.statistics().sinks["fake"]
        assert spilled.totals.spilled > 0
        assert 0 < spilled.spool_bytes <= (16 << 20) // SHARE_MAX  # its disk share
        assert driver.memory.used <= (8 << 20) // SHARE_MAX + (1 << 20)  # its memory share and one read
        for n in range(200):
            os.write(bystander, frames(encode_entry("stdout", n, b"bystander %d" % n)))
        await wait_until(lambda: len(kind.streams[1].delivered) == 200)
        kind.streams[0].resume()
        for path, fd in ((hog_path, hog), (by_path, bystander)):
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        totals = driver.statistics().sinks["fake"].totals
        # Every hog line delivered in order, or dropped past its disk share, counted.
        delivered = [r.time_nano for r in kind.streams[0].delivered]
        assert delivered == sorted(delivered)
        assert len(delivered) + totals.dropped == WRITES * 128
        assert totals.dropped > 0
        assert (driver.memory.used, driver.disk.used) == (0, 0)
        assert not any((tmp_path / "spill").rglob("*.spool"))
        nursery.cancel_scope.cancel()

"""Disk spool: model-based (hypothesis stateful) with crash points, and corruption."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from logdriver import LogRecord, PartialInfo, batch_of, records_of
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.budget import Budget
from logdriver.delivery.dead_letters import DeadLetters
from logdriver.delivery.spool import DiskQueue


def texts_of(batch: object) -> list[bytes]:
    return [r.line for r in records_of(batch)]  # type: ignore[arg-type]


class SpoolModel(RuleBasedStateMachine):
    """The spool against a list: what was offered and not acked comes back, in order, after any crash."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="spool-")
        self.spool = self._open()
        self.pending: list[bytes] = []  # offered, not acked (the model)
        self.in_flight = 0  # how many of pending's head were taken
        self.serial = 0

    def _open(self) -> DiskQueue:
        return DiskQueue(self.directory, 1 << 30, 1 << 30, Overflow.BLOCK, segment_bytes=300, fsync_interval=3600)

    @rule(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5))
    def offer(self, sizes: list[int]) -> None:
        lines = []
        for size in sizes:
            lines.append(b"%d|" % self.serial + b"x" * size)
            self.serial += 1
        offer = self.spool.offer(batch_of([LogRecord("stdout", 1, line) for line in lines]), 0.0)
        assert offer.accepted == len(lines)
        self.pending += lines

    @rule(limit=st.integers(1, 8))
    def take(self, limit: int) -> None:
        batch = self.spool.take(limit, 1 << 20)
        if batch is None:
            assert self.in_flight == len(self.pending)
            return
        got = texts_of(batch)
        assert got == self.pending[self.in_flight : self.in_flight + len(got)]
        self.in_flight += len(got)

    @rule()
    def ack(self) -> None:
        self.spool.ack()
        del self.pending[: self.in_flight]
        self.in_flight = 0

    @rule()
    def crash(self) -> None:
        """kill -9 at this point: no close, no fsync; unacked lines (in flight too) come back."""
        os.close(self.spool._fd) if self.spool._fd >= 0 else None  # the kernel closes it
        self.spool = self._open()
        self.in_flight = 0

    @invariant()
    def counts_match(self) -> None:
        assert self.spool.entries == len(self.pending) - self.in_flight

    @precondition(lambda self: True)
    @rule()
    def drain_all_and_compare(self) -> None:
        rest = []
        while (batch := self.spool.take(1000, 1 << 30)) is not None:
            rest += texts_of(batch)
        assert rest == self.pending[self.in_flight :]
        self.in_flight = len(self.pending)

    def teardown(self) -> None:
        self.spool.close()


SpoolModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_spool_against_model = SpoolModel.TestCase


def test_corrupt_record_is_skipped_counted_and_the_queue_moves_on(tmp_path: Path) -> None:
    spool = DiskQueue(str(tmp_path), 1 << 30, 1 << 30, Overflow.BLOCK, segment_bytes=1 << 20)
    for i in range(10):
        spool.offer(batch_of([LogRecord("stdout", i, b"line %d" % i)]), 0.0)
    spool.close()
    segment = next(tmp_path.glob("*.spool"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # damage a record in the middle
    segment.write_bytes(bytes(data))
    reopened = DiskQueue(str(tmp_path), 1 << 30, 1 << 30, Overflow.BLOCK)
    assert 0 < reopened.corrupt_bytes < len(data)
    survivors = texts_of(reopened.take(100, 1 << 30))
    assert survivors == [b"line %d" % i for i in range(len(survivors))]
    assert 3 <= len(survivors) < 10
    reopened.ack()
    reopened.offer(batch_of([LogRecord("stdout", 99, b"after")]), 0.0)
    assert texts_of(reopened.take(10, 1 << 30)) == [b"after"]


def test_records_round_trip_with_partial_metadata(tmp_path: Path) -> None:
    records = [
        LogRecord("stdout", 1, b""),
        LogRecord("stderr", 2**62, b"\xff\x00 bytes", PartialInfo("p" * 64, 3, False)),
        LogRecord("other", 0, b"x" * 70000, PartialInfo("", 1, True)),
    ]
    spool = DiskQueue(str(tmp_path), 1 << 30, 1 << 30, Overflow.BLOCK)
    spool.offer(batch_of(records), 0.0)
    spool.close()
    assert records_of(DiskQueue(str(tmp_path), 1 << 30, 1 << 30, Overflow.BLOCK).take(10, 1 << 30)) == records  # type: ignore[arg-type]


def test_bounded_with_drop_newest(tmp_path: Path) -> None:
    spool = DiskQueue(str(tmp_path), 10_000, 5, Overflow.DROP_NEWEST)
    offers = [spool.offer(batch_of([LogRecord("stdout", i, b"x")]), 0.0) for i in range(8)]
    assert sum(o.accepted for o in offers) == 5
    assert sum(o.dropped for o in offers) == 3


def test_spools_and_dead_letters_share_the_disk_budget(tmp_path: Path) -> None:
    disk = Budget("disk", 20_000)
    first = DiskQueue(str(tmp_path / "a"), 1 << 20, 10**6, Overflow.DROP_NEWEST, disk=disk)
    second = DiskQueue(str(tmp_path / "b"), 1 << 20, 10**6, Overflow.DROP_NEWEST, disk=disk)
    batch = batch_of([LogRecord("stdout", 1, b"z" * 100)] * 50)  # about 5.7 KB on disk
    assert first.offer(batch, 0).accepted == 50
    assert first.offer(batch, 0).accepted == 50
    assert second.offer(batch, 0).accepted == 50
    assert second.offer(batch, 0).dropped == 50  # each spool alone has room; together they do not
    assert disk.used <= 20_000
    letters = DeadLetters(str(tmp_path / "dead"), "s", budget=disk)
    rejected = batch.slice(0, 10)  # about 2.5 KB as dead-letter JSON lines
    letters.write(rejected, "c" * 64, ["rejected"] * len(rejected))
    assert (letters.written, letters.lost) == (0, 10)  # over the budget: lost, counted, logged
    first.take(10**6, 1 << 30)
    first.ack()
    assert disk.used < 20_000 - 10_000
    letters.write(rejected, "c" * 64, ["rejected"] * len(rejected))
    assert letters.written == 10
    assert oct((tmp_path / "dead" / "s" / ("c" * 64 + ".jsonl")).stat().st_mode & 0o777) == "0o600"


def test_what_is_read_back_is_charged_and_bounded_by_the_memory_share(tmp_path: Path) -> None:
    """Issue 30, finding 4: ``batch-max-bytes=2g`` read 600 MiB of spool back in one take,
    uncharged, to 1,257 MiB of RSS at a 64 MiB budget. Now batch-max-bytes is at most
    32Mi, and a take reads what the memory share has room for (one record at least)."""
    memory = Budget("memory", 4 << 20)
    share = memory.share("c" * 64)
    queue = DiskQueue(str(tmp_path / "spool"), 1 << 30, 10**6, Overflow.BLOCK, memory=share)
    for n in range(20):
        queue.offer(batch_of([LogRecord("stdout", n, b"x" * (256 << 10))]), 0.0)  # 5 MiB spooled
    taken = queue.take(10**6, 32 << 20)
    assert taken is not None
    assert 1 <= len(taken) < 20
    assert memory.used == share.used > 0  # charged while it is out
    assert memory.used <= share.limit + (512 << 10)  # the share's room, and one record
    queue.ack()
    assert memory.used == 0
    queue.close()

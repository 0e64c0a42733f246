"""SinkPipeline with fake sinks under trio's virtual clock: policies, retries, flush."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from logdriver import LogRecord, batch_of, records_of
from logdriver.config.pipeline_options import Overflow, pipeline_options
from logdriver.config.retry import RetryPolicy
from logdriver.delivery.dead_letters import DeadLetters
from logdriver.delivery.memory_queue import BatchQueue
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.sender import run_alone

from ..fakes import FakeStream


def lines(*texts: str, t: int = 0) -> list[LogRecord]:
    return [LogRecord("stdout", t + i, text.encode()) for i, text in enumerate(texts)]


def options(**opts: str) -> object:
    return pipeline_options("fake", {}, opts, {})


def make(stream: FakeStream, tmp_path: Path | None = None, **opts: str) -> SinkPipeline:
    letters = DeadLetters(str(tmp_path), "fake") if tmp_path else None
    return SinkPipeline("fake", "c" * 64, stream, options(**opts), letters, random.Random(7))  # type: ignore[arg-type]


async def test_delivers_in_order_in_batches(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    pipeline = make(stream, **{"batch-max-entries": "3", "batch-max-wait": "1s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("a", "b")))
        await trio.sleep(0.5)
        assert stream.attempts == []  # waiting for more (batch-max-wait)
        await pipeline.put(batch_of(lines("c", "d", "e")))
        await trio.sleep(2)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == [b"a", b"b", b"c", b"d", b"e"]
    assert [size for _, size in stream.attempts] == [3, 2]
    assert stream.closed


async def test_backoff_is_full_jitter_capped_and_order_is_kept(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.fail_times = 6
    pipeline = make(stream, **{"batch-max-wait": "0s", "retry-initial": "1s", "retry-max-delay": "4s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("first")))
        await pipeline.put(batch_of(lines("second")))
        await trio.sleep(60)
        await pipeline.aclose()
    times = [t for t, _ in stream.attempts]
    gaps = [b - a for a, b in itertools.pairwise(times)][:6]
    rng = random.Random(7)
    policy = RetryPolicy(1.0, 4.0)
    assert gaps == pytest.approx([policy.delay(n, rng) for n in range(6)])
    assert all(gap <= min(4.0, 2.0**n) for n, gap in enumerate(gaps))
    assert [r.line for r in stream.delivered] == [b"first", b"second"]
    assert pipeline.counters.retried == sum(size for _, size in stream.attempts[:6])  # entries, not batches


async def test_partial_verdicts_retry_some_and_dead_letter_others(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    stream = FakeStream()
    stream.retry_lines = {b"flaky"}
    stream.reject = {b"poison": "mapper_parsing_exception"}
    pipeline = make(stream, tmp_path, **{"batch-max-wait": "0s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("ok", "flaky", "poison", "fine")))
        await trio.sleep(10)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == [b"ok", b"fine", b"flaky"]
    assert pipeline.counters.dead_lettered == 1
    letters = [orjson.loads(x) for x in next((tmp_path / "fake").glob("*.jsonl")).read_bytes().splitlines()]
    assert [(x["message"], x["reason"], x["sink"]) for x in letters] == [("poison", "mapper_parsing_exception", "fake")]


async def test_drop_newest_counts_exactly_and_never_waits(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.stall()
    pipeline = make(stream, overflow="drop-newest", **{"buffer-max-entries": "10", "batch-max-wait": "0s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("x")))  # in flight, stalled
        await trio.sleep(1)
        start = trio.current_time()
        for i in range(10):
            await pipeline.put(batch_of(lines(*(f"{i}-{j}" for j in range(3)))))
        assert trio.current_time() == start  # the producer never waited
        assert pipeline.counters.dropped == 30 - 10
        stream.resume()
        await trio.sleep(1)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered][:4] == [b"x", b"0-0", b"0-1", b"0-2"]
    assert len(stream.delivered) == 11


async def test_drop_oldest_keeps_the_newest(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.stall()
    pipeline = make(stream, overflow="drop-oldest", **{"buffer-max-entries": "4", "batch-max-wait": "0s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("in-flight")))
        await trio.sleep(1)
        for i in range(10):
            await pipeline.put(batch_of(lines(str(i))))
        stream.resume()
        await trio.sleep(1)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == [b"in-flight", b"6", b"7", b"8", b"9"]
    assert pipeline.counters.dropped == 6


async def test_block_waits_then_resumes_with_nothing_lost(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.stall()
    pipeline = make(
        stream, overflow="block", **{"buffer-max-entries": "2", "batch-max-wait": "0s", "block-timeout": "60s"}
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("0")))
        await trio.sleep(1)  # "0" is in flight, stalled
        for i in (1, 2):
            await pipeline.put(batch_of(lines(str(i))))  # the queue is now full
        with trio.move_on_after(5) as scope:
            await pipeline.put(batch_of(lines("3")))
        assert scope.cancelled_caught  # the producer (the FIFO reader) is held
        nursery.start_soon(pipeline.put, batch_of(lines("3")))
        await trio.sleep(5)
        stream.resume()
        await trio.sleep(1)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == [b"0", b"1", b"2", b"3"]
    # The put cancelled above counts its line as dropped: in = out + dropped, nothing vanishes.
    assert pipeline.counters.dropped == 1
    assert pipeline.counters.lines_in == pipeline.counters.lines_out + pipeline.counters.dropped


async def test_block_is_bounded_by_block_timeout(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.stall()
    pipeline = make(
        stream, overflow="block", **{"buffer-max-entries": "1", "batch-max-wait": "0s", "block-timeout": "3s"}
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("a")))
        await pipeline.put(batch_of(lines("b")))
        start = trio.current_time()
        await pipeline.put(batch_of(lines("c")))
        assert trio.current_time() - start == pytest.approx(3)
        assert pipeline.counters.dropped == 1
        start = trio.current_time()
        await pipeline.put(batch_of(lines("d")))  # still stuck: dropped at once, no second wait
        assert trio.current_time() == start
        assert pipeline.counters.dropped == 2
        stream.resume()
        await trio.sleep(1)  # the sink delivers again: blocking resumes
        await pipeline.put(batch_of(lines("e")))
        assert pipeline.counters.dropped == 2
        nursery.cancel_scope.cancel()


async def test_close_with_a_dead_sink_returns_within_flush_timeout(autojump_clock: trio.testing.MockClock) -> None:
    stream = FakeStream()
    stream.fail_times = 10**9
    pipeline = make(stream, **{"batch-max-wait": "0s", "flush-timeout": "5s", "retry-initial": "100ms"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        for i in range(4):
            await pipeline.put(batch_of(lines(f"{i}a", f"{i}b")))
        await trio.sleep(1)
        start = trio.current_time()
        await pipeline.aclose()
        assert trio.current_time() - start <= 6
    assert pipeline.counters.dropped == 8  # counted, and logged
    assert stream.closed


async def test_a_sink_that_raises_is_retried_not_fatal(autojump_clock: trio.testing.MockClock) -> None:
    class Broken(FakeStream):
        calls = 0

        async def send_batch(self, batch: object) -> object:  # type: ignore[override]
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("bug in a sink")
            return await super().send_batch(batch)  # type: ignore[arg-type]

    stream = Broken()
    pipeline = make(stream, **{"batch-max-wait": "0s"})
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        await pipeline.put(batch_of(lines("survives")))
        await trio.sleep(5)
        await pipeline.aclose()
    assert [r.line for r in stream.delivered] == [b"survives"]


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from([Overflow.DROP_NEWEST, Overflow.DROP_OLDEST]),
    max_entries=st.integers(1, 12),
    max_bytes=st.integers(1, 60),
    ops=st.lists(st.one_of(st.lists(st.binary(max_size=8), min_size=1, max_size=6), st.integers(1, 5)), max_size=30),
)
def test_queue_against_a_model(policy: Overflow, max_entries: int, max_bytes: int, ops: list[object]) -> None:
    """Every entry is delivered or counted as dropped, in order, and the limits hold."""
    queue = BatchQueue(max_bytes, max_entries, policy)
    offered: list[bytes] = []
    taken: list[bytes] = []
    dropped = 0
    serial = 0
    for op in ops:
        if isinstance(op, list):
            texts = [b"%d:" % (serial + i) + payload for i, payload in enumerate(op)]
            serial += len(op)
            offered += texts
            offer = queue.offer(batch_of([LogRecord("stdout", 0, t) for t in texts]), 0.0)
            dropped += offer.dropped
            assert queue.entries <= max(max_entries, 1)
            assert queue.bytes <= max_bytes or queue.entries == 1
        else:
            batch = queue.take(op, 1 << 20)
            if batch is not None:
                taken += [r.line for r in records_of(batch)]
    rest = queue.take(1 << 30, 1 << 30)
    taken += [r.line for r in records_of(rest)] if rest is not None else []
    assert len(taken) + dropped == len(offered)
    positions = [offered.index(t) for t in taken]
    assert positions == sorted(positions)  # order kept
    if policy is Overflow.DROP_NEWEST and taken:
        assert taken[0] == offered[0]  # the oldest entry is never the one dropped first


async def test_disk_buffer_keeps_what_a_dead_sink_did_not_take(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    spool = str(tmp_path / "spool")
    dead = FakeStream()
    dead.fail_times = 10**9
    opts = options(buffer="disk", **{"batch-max-wait": "0s", "flush-timeout": "2s"})
    first = SinkPipeline("fake", "c" * 64, dead, opts, None, random.Random(1), spool_dir=spool)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, first)
        for i in range(5):
            await first.put(batch_of(lines(f"{i}a", f"{i}b")))
        await trio.sleep(3)
        await first.aclose()
    assert first.counters.dropped == 0  # nothing dropped: it stays on disk
    alive = FakeStream()
    second = SinkPipeline("fake", "c" * 64, alive, opts, None, random.Random(1), spool_dir=spool)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, second)  # replays the spool first
        await second.put(batch_of(lines("new")))
        await trio.sleep(1)
        await second.aclose()
    assert [r.line for r in alive.delivered] == [f"{i}{x}".encode() for i in range(5) for x in "ab"] + [b"new"]


async def test_a_dead_sink_at_close_drops_every_queued_line_counted(autojump_clock: trio.testing.MockClock) -> None:
    """Regression (found by the Fluentd benchmark): when the flush deadline cut a batch's
    retries short, the worker took the next batch and the cut one was never counted."""
    stream = FakeStream()
    stream.fail_times = 10**9
    options = {"batch-max-entries": "10", "retry-initial": "1s", "retry-max-delay": "4s", "flush-timeout": "5s"}
    pipeline = make(stream, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        for start in range(0, 200, 20):
            await pipeline.put(batch_of(lines(*(str(i) for i in range(start, start + 20)))))
        await trio.sleep(30)
        await pipeline.aclose()
    stats = pipeline.counters
    assert stats.lines_in == 200
    assert stats.lines_out == 0
    assert stats.dropped == 200

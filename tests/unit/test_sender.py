"""Sender: shared requests across containers, fairness, verdict routing, block isolation.

Fake streams under trio's virtual clock; the real sinks' shared requests are
tested against their real peers in tests/sinks and tests/integration.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from logdriver import LogBatch, LogRecord, batch_of
from logdriver.abc import SendResult, SinkStream
from logdriver.config.pipeline_options import pipeline_options
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.sender import Sender, SendTogether, fair_shares

from ..fakes import FakeStream


@given(st.lists(st.integers(0, 50), max_size=20), st.integers(1, 200))
def test_fair_shares_are_max_min_fair(sizes: list[int], capacity: int) -> None:
    shares = fair_shares(sizes, capacity)
    assert all(0 <= share <= size for share, size in zip(shares, sizes, strict=True))
    assert sum(shares) == min(capacity, sum(sizes))
    # Nobody with lines left over got less than anyone else got, beyond one line of rounding.
    short = [share for share, size in zip(shares, sizes, strict=True) if share < size]
    if short:
        assert max(shares) <= min(short) + 1


class Requests:
    """A fake sink's send_together: records each request's parts, then lets each stream judge its part."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds  # how long a request takes
        self.log: list[list[tuple[str, int]]] = []

    async def __call__(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> list[SendResult]:
        self.log.append([(getattr(stream, "name", "?"), len(batch)) for stream, batch in parts])
        await trio.sleep(self.seconds)
        return [await stream.send_batch(batch) for stream, batch in parts]


def named(name: str) -> FakeStream:
    stream = FakeStream()
    stream.name = name  # type: ignore[attr-defined]
    return stream


def lines(prefix: str, count: int, t: int = 0) -> LogBatch:
    return batch_of([LogRecord("stdout", t + i, f"{prefix}{i}".encode()) for i in range(count)])


def sharing(pipelines: Sequence[SinkPipeline], send: SendTogether) -> Sender:
    """One destination worker for ``pipelines`` (not started), as the plugin makes it."""
    destination = Sender("fake", pipelines[0].options, send)
    for p in pipelines:
        destination.attach(p)
    return destination


def pipeline(stream: FakeStream, **opts: str) -> SinkPipeline:
    return SinkPipeline("fake", stream.name * 64, stream, pipeline_options("fake", {}, opts, {}), rng=random.Random(3))  # type: ignore[attr-defined]


BATCHING = {"batch-max-entries": "100", "batch-max-wait": "1s", "retry-initial": "100ms", "retry-max-delay": "100ms"}


async def test_one_request_carries_every_container_and_a_flat_out_one_cannot_starve_a_quiet_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    requests = Requests(seconds=0.5)
    busy, quiet = named("b"), named("q")
    pipelines = [pipeline(busy, **BATCHING, **{"buffer-max-entries": "100000"}), pipeline(quiet, **BATCHING)]
    destination = sharing(pipelines, requests)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        pipelines[0].try_put(lines("b", 50_000))  # flat out: 500 full requests queued
        await trio.sleep(3.2)
        put_at = trio.current_time()
        pipelines[1].try_put(lines("q", 3))
        while len(quiet.delivered) < 3:  # noqa: ASYNC110 - virtual time: polling measures the latency
            await trio.sleep(0.01)
        waited = trio.current_time() - put_at
        # batch-max-wait (1 s) plus the request in flight (0.5 s) plus the quiet line's own request (0.5 s)
        assert waited <= 1.0 + 0.5 + 0.5 + 0.02
        mixed = [request for request in requests.log if len(request) == 2]
        assert mixed == [[("q", 3), ("b", 97)]] or mixed == [[("b", 97), ("q", 3)]]
        assert all(sum(n for _, n in request) == 100 for request in requests.log)  # full requests
        for p in pipelines:
            p.close(trio.current_time())
    assert destination.requests == len(requests.log)


async def test_verdicts_go_back_to_the_container_whose_lines_they_judge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    requests = Requests()
    first, second = named("a"), named("c")
    first.reject = {b"a1": "mapping conflict"}
    second.retry_lines = {b"c0"}
    pipelines = [pipeline(first, **BATCHING), pipeline(second, **BATCHING)]
    destination = sharing(pipelines, requests)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        pipelines[0].try_put(lines("a", 3))
        pipelines[1].try_put(lines("c", 2))
        await trio.sleep(2)
        for p in pipelines:
            p.close()
    assert requests.log[0] in ([("a", 3), ("c", 2)], [("c", 2), ("a", 3)])
    assert requests.log[1] == [("c", 1)]  # only the retried line goes again
    assert [r.line for r in first.delivered] == [b"a0", b"a2"]
    assert [r.line for r in second.delivered] == [b"c1", b"c0"]
    a, c = (p.counters for p in pipelines)
    assert (a.lines_out, a.dead_lettered, a.retried) == (2, 1, 0)
    assert (c.lines_out, c.dead_lettered, c.retried) == (2, 0, 1)
    assert all(p.done and p.queued == 0 for p in pipelines)


async def test_a_container_blocked_by_its_full_queue_does_not_hold_up_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    requests = Requests(seconds=0.2)
    blocked, flowing = named("k"), named("f")
    tight = {**BATCHING, "batch-max-entries": "10", "batch-max-wait": "0s"}
    pipelines = [
        pipeline(blocked, **tight, overflow="block", **{"buffer-max-entries": "20", "block-timeout": "60s"}),
        pipeline(flowing, **tight),
    ]
    destination = sharing(pipelines, requests)
    producer_waits = 0
    produced = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)

        async def flat_out() -> None:
            nonlocal producer_waits
            for n in range(100):
                batch = lines(f"k{n}-", 10)
                if not pipelines[0].try_put(batch):
                    producer_waits += 1
                    await pipelines[0].put(batch)
            produced.set()

        nursery.start_soon(flat_out)
        for n in range(10):
            started = trio.current_time()
            pipelines[1].try_put(lines(f"f{n}-", 1))
            while len(flowing.delivered) < n + 1:  # noqa: ASYNC110 - virtual time: polling measures the latency
                await trio.sleep(0.01)
            assert trio.current_time() - started <= 2 * 0.2 + 0.02  # the request in flight, then its own
        assert producer_waits > 0  # the blocked container really was held
        await produced.wait()
        for p in pipelines:
            p.close(trio.current_time() + 60)
    assert pipelines[0].counters.dropped == 0
    assert len(blocked.delivered) == 1000


async def test_a_bad_verdict_costs_its_own_container_only(autojump_clock: trio.testing.MockClock) -> None:
    good, broken = named("g"), named("b")

    async def send(parts: Sequence[tuple[SinkStream, LogBatch]]) -> list[SendResult]:
        results = [await stream.send_batch(batch) for stream, batch in parts]
        bad = SendResult(retry=[10**6])  # an index the batch does not have
        return [bad if stream is broken else r for (stream, _), r in zip(parts, results, strict=True)]

    pipelines = [pipeline(good, **BATCHING), pipeline(broken, **BATCHING)]
    destination = sharing(pipelines, send)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        for n in range(3):
            for p in pipelines:
                p.try_put(lines(f"{n}-", 2))
            await trio.sleep(2)
        for p in pipelines:
            p.close()
    g, b = (p.counters for p in pipelines)
    assert (g.lines_in, g.lines_out, g.dropped) == (6, 6, 0)  # every request of the good one went through
    assert (b.lines_in, b.lines_out, b.dropped) == (6, 0, 6)  # counted, not silently lost
    assert all(p.done and p.queued == 0 for p in pipelines)


async def test_lines_that_make_the_sink_raise_hold_back_their_own_container_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    good, poisoned = named("g"), named("p")
    requests: list[int] = []

    async def send(parts: Sequence[tuple[SinkStream, LogBatch]]) -> list[SendResult]:
        requests.append(len(parts))
        if any(line == b"poison" for _, batch in parts for _, _, line, _ in batch.tuples()):
            raise ValueError("the renderer cannot take this line")
        return [await stream.send_batch(batch) for stream, batch in parts]

    options = {**BATCHING, "retry-max-attempts": "3"}
    pipelines = [pipeline(good, **options), pipeline(poisoned, **options)]
    destination = sharing(pipelines, send)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        for n in range(3):
            pipelines[0].try_put(lines(f"{n}-", 2))
            pipelines[1].try_put(batch_of([LogRecord("stdout", n, b"poison")]))
            await trio.sleep(2)
        for p in pipelines:
            p.close()
    g, p = (p.counters for p in pipelines)
    assert (g.lines_in, g.lines_out, g.dropped, g.retried) == (6, 6, 0, 0)  # never held back by its neighbour
    assert (p.lines_in, p.lines_out, p.dead_lettered) == (3, 0, 3)  # given up after its attempts, counted
    assert 2 in requests  # the two containers did share requests
    assert all(p.done and p.queued == 0 for p in pipelines)


async def _bystander_lines(neighbour: FakeStream, seconds: float) -> tuple[int, SinkPipeline]:
    """Lines of a flat-out bystander delivered in ``seconds`` of virtual time, with a
    ``neighbour`` writing as fast on the same destination."""
    requests = Requests(seconds=0.05)
    bystander = named("y")
    options = {**BATCHING, "batch-max-wait": "0s", "retry-max-delay": "2s", "buffer-max-entries": "1000000"}
    pipelines = [pipeline(bystander, **options), pipeline(neighbour, **options)]
    destination = sharing(pipelines, requests)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        end = trio.current_time() + seconds
        n = 0
        while trio.current_time() < end:
            for p in pipelines:
                p.try_put(lines(f"{p.stream.name}{n}-", 100))  # type: ignore[attr-defined]
            n += 1
            await trio.sleep(0.01)
        delivered = len(bystander.delivered)
        for p in pipelines:
            p.close(trio.current_time())
    return delivered, pipelines[1]


class Refusing(FakeStream):
    """A stream whose every send fails: retried forever (the default policy) or rejected for good."""

    def __init__(self, name: str, how: str) -> None:
        super().__init__()
        self.name = name
        self.how = how

    async def send_batch(self, batch: LogBatch) -> SendResult:
        self.attempts.append((trio.current_time(), len(batch)))
        if self.how == "retry":
            return SendResult.retry_all(len(batch))
        return SendResult(rejected=dict.fromkeys(range(len(batch)), "poison"))


async def test_a_container_whose_lines_always_fail_costs_a_bystander_under_ten_percent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Finding: a failed part was retried, forever by default, before the next request: every
    # container on the destination waited (the bystander got 205 of 258,000 lines through).
    # The yardstick is the same neighbour, healthy: two flat-out containers share the
    # destination's requests fairly, and a failing one may not take more than its share.
    healthy, _ = await _bystander_lines(named("x"), 20.0)
    for how in ("retry", "reject"):
        failing = Refusing("x", how)
        beside, pipeline_x = await _bystander_lines(failing, 20.0)
        assert beside >= 0.9 * healthy, (how, beside, healthy)
        stats = pipeline_x.counters
        if how == "retry":
            # Retried on its own schedule (backing off to retry-max-delay), not once per request.
            assert len(failing.attempts) <= 20.0 / 0.1 + 2
            assert stats.retried > 0
        else:
            assert stats.dead_lettered == stats.lines_in - stats.dropped  # set aside, counted


async def test_a_spool_that_cannot_be_read_costs_its_own_container_only(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Audit finding: one spool read error ended the shared worker; every container on it lost
    # its queued lines, neither delivered nor counted as dropped.
    broken, healthy = named("s"), named("h")
    options = {**BATCHING, "buffer": "disk"}
    spooled = SinkPipeline(
        "fake",
        "s" * 64,
        broken,
        pipeline_options("fake", {}, options, {}),
        spool_dir=str(tmp_path / "spool"),
    )
    other = pipeline(healthy, **BATCHING)
    destination = sharing((spooled, other), Requests())
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        spooled.try_put(lines("s", 5))
        for segment in (tmp_path / "spool").glob("*.spool"):
            segment.unlink()  # the spool's segment is gone before it is read back
        spooled.try_put(lines("t", 5))
        other.try_put(lines("h", 5))
        await trio.sleep(3)
        other.try_put(lines("i", 5))
        await trio.sleep(3)
        for p in (spooled, other):
            p.close()
    assert len(healthy.delivered) == 10  # the worker went on
    s = spooled.counters
    assert s.dropped + s.lines_out == s.lines_in == 10  # the unreadable lines are counted
    assert s.dropped >= 5


async def test_a_shutdown_stops_a_part_waiting_for_a_long_retry_at_its_flush_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    failing = Refusing("x", "retry")
    slow = pipeline(failing, **{**BATCHING, "batch-max-wait": "0s", "retry-initial": "1h", "retry-max-delay": "1h"})
    destination = Sender("fake", slow.options, Requests())
    destination.attach(slow)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        slow.try_put(lines("x", 5))
        await trio.sleep(1)  # failed once; its retry is due in up to an hour
        started = trio.current_time()
        slow.close(started + 2)  # a plugin shutdown with a 2 s flush timeout
        await slow.finished()
        assert trio.current_time() - started <= 2.01
    assert slow.counters.dropped == 5  # memory queue: counted, not silently lost


async def test_a_destination_s_retry_after_is_the_least_wait(autojump_clock: trio.testing.MockClock) -> None:
    throttled = named("t")
    throttled.fail_times, throttled.retry_after = 1, 30.0  # a 429 with Retry-After: 30
    only = pipeline(throttled, **{**BATCHING, "batch-max-wait": "0s"})
    destination = Sender("fake", only.options, Requests())
    destination.attach(only)
    async with trio.open_nursery() as nursery:
        await nursery.start(destination.run)
        only.try_put(lines("t", 3))
        only.close(trio.current_time() + 120)  # delivers what it holds first
        await only.finished()
        nursery.cancel_scope.cancel()
    assert only.counters.lines_out == 3
    first, second = (time for time, _ in throttled.attempts)
    assert second - first >= 30.0  # not the 100 ms the retry policy alone would wait

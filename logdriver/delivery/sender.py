"""One destination's delivery: a single worker drains every container's pipeline fairly.

Containers whose streams name the same destination (``SinkStream.destination``:
same sink kind, addresses, credentials and target) and the same batching and
retry options share one ``Sender``. Its worker builds each request from
all of their queues, sends it with ``Sink.send_together`` (one bulk request, one
forward write on one connection, one pass over the files) and hands each
pipeline the verdict on its own lines.

Fairness: each request gives every pipeline with queued lines an equal share of
``batch-max-entries`` (what a quiet one leaves unused goes to the busy ones),
and the next request starts after the last pipeline served. So a container
writing flat out delays a quiet one on the same destination by at most
``batch-max-wait`` plus the request in flight.

Shared requests, not shared fate: a part that must be retried is set aside with
its own pipeline's attempt count and retry time, and the worker goes on building
requests from everyone else's queues; at its time the part goes out in whatever
request is built then. Until it is delivered its pipeline sends nothing newer, so
each container's lines stay in order. Lines refused for good go to the dead letters
at once. A pipeline whose spool cannot be read back loses those lines, counted.

Wake-ups: a put wakes the worker only when it makes a request due sooner (a
queue reached ``batch-max-entries``, a first line with ``batch-max-wait`` 0, a
close), so a busy host costs one wake-up per request, not one per read.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from logdriver._exceptions import is_native_panic
from logdriver._native import LogBatch
from logdriver.abc import SendResult, SinkStream
from logdriver.config.pipeline_options import PipelineOptions
from logdriver.delivery.pipeline import SinkPipeline

log = logging.getLogger("logdriver.sender")

Part = tuple[SinkStream, LogBatch]
SendTogether = Callable[[Sequence[Part]], Awaitable[Sequence[SendResult]]]


async def send_each(parts: Sequence[Part]) -> list[SendResult]:
    """``Sink.send_together`` for a sink without shared requests: one ``send_batch`` per part."""
    return [await stream.send_batch(batch) for stream, batch in parts]


def fair_shares(sizes: Sequence[int], capacity: int) -> list[int]:
    """Split ``capacity`` over queues of ``sizes``: equal shares, and what a small queue
    leaves unused goes to the others (max-min fairness). With more queues than
    capacity, the first ``capacity`` queues get one line each."""
    shares = [0] * len(sizes)
    waiting = [index for index, size in enumerate(sizes) if size > 0]
    left = capacity
    while waiting and left > 0:
        each = left // len(waiting)
        if each == 0:
            for index in waiting[:left]:
                shares[index] += 1
            break
        still = []
        for index in waiting:
            give = min(each, sizes[index] - shares[index])
            shares[index] += give
            left -= give
            if shares[index] < sizes[index]:
                still.append(index)
        waiting = still
    return shares


@dataclass(slots=True)
class _Held:
    batch: LogBatch  # the part to send again, before any newer line of its pipeline
    due: float  # when (trio time)


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    sink: str
    requests: int  # requests sent (first attempts; one carries many containers)
    request_lines: int  # lines in them
    pipelines: int  # pipelines attached now
    held: int  # of them, holding a failed part until its retry time


class Sender:
    """Run with ``await nursery.start(sender.run)``; it returns when its last pipeline is done."""

    def __init__(
        self,
        sink: str,
        options: PipelineOptions,
        send_together: SendTogether,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.options = options
        self._send_together = send_together
        self.rng = rng or random.Random()
        self.pipelines: dict[SinkPipeline, None] = {}  # insertion-ordered set
        self._queued: dict[SinkPipeline, None] = {}  # pipelines that may have queued lines
        self._closed: dict[SinkPipeline, None] = {}  # pipelines closed since the worker last looked
        self._changed = trio.Event()
        self._due = math.inf  # when the next request is due, as the worker last computed it
        self._pending = 0  # lines offered since the worker last looked (a hint)
        self._turn = 0
        # Parts waiting for their retry time, and each failing pipeline's (retries done, first failure).
        self._held: dict[SinkPipeline, _Held] = {}
        self._attempts: dict[SinkPipeline, tuple[int, float]] = {}
        self.requests = 0  # requests sent (first attempts)
        self.request_lines = 0  # lines in them

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(self.sink, self.requests, self.request_lines, len(self.pipelines), len(self._held))

    def attach(self, pipeline: SinkPipeline) -> None:
        pipeline.attach(self)
        self.pipelines[pipeline] = None
        if pipeline.backlog.entries:  # a spool replaying
            self.notify(pipeline, pipeline.backlog.entries)

    def notify(self, pipeline: SinkPipeline, lines: int) -> None:
        """A pipeline queued ``lines`` (or closed, with 0): wake the worker if that makes a request due sooner."""
        if lines:
            self._queued[pipeline] = None
        else:
            self._closed[pipeline] = None
        self._pending += lines
        opts = self.options
        if (
            lines == 0
            or self._pending >= opts.batch_max_entries
            or pipeline.backlog.bytes >= opts.batch_max_bytes
            or trio.current_time() + opts.batch_max_wait < self._due
        ):
            self._changed.set()

    def wake(self) -> None:
        """Look at the queues now (a pipeline's writer is held by its full queue)."""
        self._changed.set()

    # -- the worker ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while self.pipelines:
                request = self._next_request()
                if request:
                    await self._deliver(request)
                    continue
                await self._finish_idle()
                if not self.pipelines:
                    break
                changed = self._changed
                with trio.move_on_at(self._due):
                    await changed.wait()
                if changed.is_set():
                    self._changed = trio.Event()
        finally:
            for pipeline in list(self.pipelines):
                await pipeline.finish()
            self.pipelines.clear()

    def _next_request(self) -> list[tuple[SinkPipeline, LogBatch]]:
        """Lines from every queue when a request is due, else [] (and ``_due`` says when).

        A pipeline holding a failed part (``_held``) sends nothing new until that part is
        delivered: its lines stay in order. The part goes out again at its own retry time,
        in whatever request is built then; the others never wait for it.
        """
        now = trio.current_time()
        held_due = [p for p, held in self._held.items() if held.due <= now < p.flush_deadline]
        ready = [p for p in self._queued if p.backlog.entries and p.flush_deadline > now and p not in self._held]
        # A held pipeline's new lines wait for its retry; keep it in mind for then.
        self._queued = dict.fromkeys([*ready, *(p for p in self._queued if p in self._held)])
        self._pending = 0
        self._due = math.inf
        request = [(p, self._held.pop(p).batch) for p in held_due]
        if ready:
            request += self._take_fair(ready, now, due_anyway=bool(request))
        # A held part's retry time, or its pipeline's flush deadline (a shutdown) if sooner:
        # then it stops (``_finish_idle``) without waiting for a retry it has no time for.
        self._due = min([self._due, *(min(held.due, p.flush_deadline) for p, held in self._held.items())])
        if request:
            self.requests += 1
            self.request_lines += sum(len(batch) for _, batch in request)
        return request

    def _take_fair(
        self, ready: list[SinkPipeline], now: float, *, due_anyway: bool
    ) -> list[tuple[SinkPipeline, LogBatch]]:
        """Fair shares of the ready queues, if a request is due (or is being sent anyway)."""
        opts = self.options
        entries = sum(p.backlog.entries for p in ready)
        nbytes = sum(p.backlog.bytes for p in ready)
        oldest = min(now if (since := p.backlog.oldest_since()) is None else since for p in ready)
        # A plugin shutdown's deadline sends at once; a container's exit does not: its
        # lines wait batch-max-wait like the others, so that exiting containers share requests.
        # A queue whose writer is held by block goes out at once too: waiting for a
        # fuller request would only hold the container longer.
        urgent = any(p.flush_deadline < math.inf or p.producer_waiting for p in ready)
        self._due = oldest + opts.batch_max_wait
        if (
            not (due_anyway or urgent or entries >= opts.batch_max_entries or nbytes >= opts.batch_max_bytes)
            and now < self._due
        ):
            return []
        start = self._turn % len(ready)
        ready = ready[start:] + ready[:start]
        shares = fair_shares([p.backlog.entries for p in ready], opts.batch_max_entries)
        room = opts.batch_max_bytes
        request = []
        served = 0
        for position, (pipeline, share) in enumerate(zip(ready, shares, strict=True)):
            if share == 0 or room <= 0:
                continue
            batch = pipeline.take(share, room)
            if batch is not None:
                request.append((pipeline, batch))
                room -= batch.nbytes
                served = position + 1
        self._turn = start + served
        return request

    async def _finish_idle(self) -> None:
        """Pipelines that are closed with nothing left to send, or past their flush deadline, stop."""
        now = trio.current_time()
        closed, self._closed = self._closed, {}
        for pipeline in closed:
            if pipeline not in self.pipelines:
                continue
            idle = not pipeline.backlog.entries and pipeline not in self._held
            if idle or pipeline.flush_deadline <= now:
                await self._stop(pipeline)
            else:
                self._closed[pipeline] = None  # lines still to send (when due): look again then
                self._queued[pipeline] = None

    async def _stop(self, pipeline: SinkPipeline) -> None:
        del self.pipelines[pipeline]
        self._held.pop(pipeline, None)
        self._attempts.pop(pipeline, None)
        self._queued.pop(pipeline, None)
        self._closed.pop(pipeline, None)
        await pipeline.finish()

    async def _deliver(self, request: list[tuple[SinkPipeline, LogBatch]]) -> None:
        """Send once; each part that must be retried waits for its own retry time.

        A failed part never holds the worker: it is set aside (``_held``) with its own
        attempt count and schedule, and the next request goes out for everyone else.
        Parts that failed together, with the same attempt count, get the same delay,
        so an outage of the whole destination still retries them in one request.
        """
        policy = self.options.retry
        now = trio.current_time()
        results = await self._send(request)
        jitter = self.rng.random()
        for (pipeline, batch), result in zip(request, results, strict=True):
            try:
                retry = await pipeline.settle(batch, result, now)
            except Exception:
                # A verdict that does not fit its batch (an index out of range, not a
                # SendResult): that container's part is lost, counted; the others go on.
                log.exception("sink %s gave a bad verdict on %d lines", self.sink, len(batch))
                pipeline.discard(batch, "bad verdict from the sink")
                self._attempts.pop(pipeline, None)
                continue
            if retry is None:
                self._attempts.pop(pipeline, None)
                continue
            attempt, started = self._attempts.get(pipeline, (0, now))
            # The destination's own wait (Retry-After) is a floor: sooner would be refused again.
            delay = max(jitter * policy.bound(attempt), result.retry_after or 0.0)
            later = trio.current_time()
            if policy.gives_up(later - started, delay, attempt):
                self._attempts.pop(pipeline, None)
                await pipeline.give_up(retry, attempt + 1)
            elif later + delay > min(pipeline.flush_deadline, pipeline.give_up_at):
                # Its flush deadline comes before the next try: it stops with its lines
                # unsettled, lost from memory (counted) or kept by a spool.
                self._attempts.pop(pipeline, None)
                await self._stop(pipeline)
            else:
                self._attempts[pipeline] = (attempt + 1, started)
                self._held[pipeline] = _Held(retry, later + delay)
        if self._held:
            self._due = min(self._due, min(held.due for held in self._held.values()))

    async def _send(self, request: list[tuple[SinkPipeline, LogBatch]]) -> Sequence[SendResult]:
        deadline = min(pipeline.flush_deadline for pipeline, _ in request)
        parts = [(pipeline.stream, batch) for pipeline, batch in request]
        try:
            if deadline == math.inf:  # the common case: spare the cancel scope
                results = await self._send_together(parts)
            else:
                results = None
                with trio.move_on_at(deadline):
                    results = await self._send_together(parts)
            if results is not None:
                if len(results) != len(request):
                    raise RuntimeError(f"{len(results)} verdicts for {len(request)} parts")
                return results
        except BaseException as exc:
            if not isinstance(exc, Exception) and not is_native_panic(exc):
                raise
            # A sink must answer with verdicts; one that raises (or whose renderer panics)
            # is treated as "retry all".
            log.exception("sink %s raised while sending %d lines; retrying them", self.sink, _lines(request))
            if len(request) > 1:
                # One container's lines may be what breaks the sink: each part again on its
                # own, so that they hold back only their own container, not the request's.
                return [(await self._send([part]))[0] for part in request]
        for pipeline, _ in request:
            pipeline.count_send_failure()
        return [SendResult.retry_all(len(batch)) for _, batch in request]


def _lines(request: Sequence[tuple[SinkPipeline, LogBatch]]) -> int:
    return sum(len(batch) for _, batch in request)


async def run_alone(pipeline: SinkPipeline, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Deliver ``pipeline`` through a sender of its own until it is closed and done (tests, one container)."""
    sender = Sender(pipeline.sink, pipeline.options, send_each, pipeline.rng)
    sender.attach(pipeline)
    await sender.run(task_status=task_status)

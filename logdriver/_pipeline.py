"""One sink's pipeline for one container: bounded queue, batching, retries, flush.

The FIFO task ``put``s every read batch into each of the container's pipelines;
each pipeline's worker task takes batches (by lines, bytes and time), sends
them, and retries what the sink asks to retry with full-jitter backoff. A slow
or dead sink fills only its own queue; what happens then is its overflow
policy (``_buffer``). Nothing is dropped silently: every drop is counted here
and logged at most every ``DROP_LOG_INTERVAL`` seconds.

Closing at EOF (after StopLogging) stops input; the worker keeps delivering
what is queued until it is delivered or the retry policy gives up on it
(``_delivery`` keeps such a pipeline running after its FIFO is gone). A
plugin shutdown closes with a deadline, ``flush-timeout``; what a memory queue
holds then is counted as dropped, and a disk spool keeps it. Nothing here
can hold up ``docker stop``: the FIFO keeps being read unless the policy is
``block``, and a block lasts at most ``block-timeout``, after which the
pipeline drops (counted) until the sink delivers again.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from ._budget import Budget
from ._buffer import BatchQueue, Offer
from ._deadletter import CHUNK, DeadLetters
from ._native import LogBatch
from ._pipeline_options import PipelineOptions
from ._spool import DiskQueue
from .abc import SendResult, SinkStream

log = logging.getLogger("logdriver.pipeline")

DROP_LOG_INTERVAL = 10.0


@dataclass(slots=True)
class PipelineStatistics:
    lines_in: int = 0
    lines_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    send_failures: int = 0
    failing_since: float | None = None  # when sends started failing (None: healthy)


COUNTER_FIELDS = (
    "lines_in",
    "lines_out",
    "bytes_in",
    "bytes_out",
    "dropped",
    "retried",
    "dead_lettered",
    "send_failures",
)


@dataclass(slots=True)
class SinkSnapshot:
    """One sink across containers, for metrics and health."""

    totals: PipelineStatistics
    buffer_lines: int = 0
    buffer_bytes: int = 0
    spool_bytes: int = 0
    oldest_age: float = 0.0
    failing_for: float = 0.0  # longest current run of failed sends among its containers


class SinkPipeline:
    """Run with ``await nursery.start(pipeline.run)``; feed with ``put``; end with ``close``."""

    def __init__(
        self,
        sink: str,
        container_id: str,
        stream: SinkStream,
        options: PipelineOptions,
        dead_letters: DeadLetters | None = None,
        rng: random.Random | None = None,
        spool_dir: str | None = None,
        memory: Budget | None = None,
        disk: Budget | None = None,
    ) -> None:
        self.sink = sink
        self.container_id = container_id
        self.stream = stream
        self.options = options
        self.spool: DiskQueue | None = None
        self.queue: BatchQueue | DiskQueue
        if options.buffer == "disk":
            if spool_dir is None:
                raise ValueError("buffer=disk needs a spool directory")
            self.queue = self.spool = DiskQueue(
                spool_dir,
                options.buffer_max_bytes,
                options.buffer_max_entries,
                options.overflow,
                now=trio.current_time(),
                disk=disk,
            )
        else:
            self.queue = BatchQueue(options.buffer_max_bytes, options.buffer_max_entries, options.overflow, memory)
        self.dead_letters = dead_letters
        self.rng = rng or random.Random()
        self.statistics = PipelineStatistics()
        self._changed = trio.Event()
        self._space = trio.Event()
        self._closing = False
        self.draining = False  # set by the owner: the FIFO closed with lines still queued
        self.closed_cleanly = False  # ended with nothing queued (a spool may then be deleted)
        self._shedding = False  # block timed out and the sink has not recovered since
        self._flush_deadline = math.inf  # set by close(deadline): a plugin shutdown
        self._in_flight = 0
        self._unlogged_drops: dict[str, int] = {}  # reason → lines dropped since the last log line
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._done = trio.Event()
        self._scope = trio.CancelScope()

    # -- producer side ---------------------------------------------------------

    async def put(self, batch: LogBatch) -> None:
        """Queue a batch under the overflow policy; waits only under ``block``."""
        if not batch:
            return
        self.statistics.lines_in += len(batch)
        self.statistics.bytes_in += batch.nbytes
        offer = self._offer(batch)
        if offer.must_wait and not self._shedding:
            with trio.move_on_after(self.options.block_timeout):
                while offer.must_wait and not self._closing:
                    space = self._space
                    await space.wait()
                    offer = self._offer(batch)
            # Blocked too long: stop blocking until the sink takes lines again, so that
            # a dead destination costs the container one block-timeout, not one per read.
            self._shedding = offer.must_wait
        if offer.must_wait:
            self._drop(len(batch), f"sink stuck past block-timeout ({self.options.block_timeout:g} s)")
        if offer.dropped:
            self._drop(offer.dropped, f"buffer full ({self.options.overflow.value})")
        self._wake()

    def _offer(self, batch: LogBatch) -> Offer:
        try:
            return self.queue.offer(batch, trio.current_time())
        except OSError as exc:  # a spool on a full disk, or out of descriptors
            self._drop(len(batch), f"spool write failed: {exc.strerror}")
            return Offer()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def queued(self) -> int:
        """Lines not yet delivered: queued, and in the batch being sent."""
        if self.spool is not None:
            return self.spool.entries_total
        return self.queue.entries + self._in_flight

    def close(self, deadline: float = math.inf) -> None:
        """No more puts: deliver what is queued, then stop.

        With the default deadline the pipeline keeps going until everything is
        delivered or given up by the retry policy; a plugin shutdown passes one.
        An earlier deadline replaces a later one.
        """
        self._closing = True
        self._flush_deadline = min(deadline, self._flush_deadline)
        self._wake()
        self._space.set()

    async def finished(self) -> None:
        """Wait until the worker has stopped and the stream is closed."""
        await self._done.wait()

    async def aclose(self) -> None:
        """Close with ``flush-timeout`` as the deadline, and wait for the worker to stop."""
        self.close(trio.current_time() + self.options.flush_timeout)
        with trio.move_on_after(self.options.flush_timeout + 1.0):
            await self._done.wait()
        self._scope.cancel()  # a sink stuck past its deadline (it should not be)
        await self._done.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _drop(self, count: int, reason: str) -> None:
        self.statistics.dropped += count
        self._unlogged_drops[reason] = self._unlogged_drops.get(reason, 0) + count
        now = trio.current_time()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL or self._closing:
            log.warning(
                "sink %s dropped %d lines of container %s (%s); %d dropped in all",
                self.sink,
                sum(self._unlogged_drops.values()),
                self.container_id[:12],
                "; ".join(f"{why}: {n}" for why, n in self._unlogged_drops.items()),
                self.statistics.dropped,
            )
            self._unlogged_drops.clear()
            self._last_drop_log = now

    # -- consumer side ---------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            with self._scope:
                while (batch := await self._next_batch()) is not None:
                    self._in_flight = len(batch)
                    self._space.set()
                    self._space = trio.Event()
                    # What is still undelivered at the flush deadline stays counted as in flight,
                    # and nothing after it is taken: the queue behind it is accounted for below
                    # (and a spool must not ack past it).
                    self._in_flight = await self._deliver(batch)
                    if self._in_flight:
                        break
                    if self.spool is not None:
                        self.spool.ack()
        finally:
            self.closed_cleanly = self._closing and not self.queued
            try:
                if self.spool is not None:
                    # Undelivered lines stay in the spool (not acked) and replay at the next start.
                    kept = self.spool.entries_total
                    if kept:
                        log.warning(
                            "sink %s: %d lines of %s stay in the disk spool", self.sink, kept, self.container_id[:12]
                        )
                    self.spool.close()
                else:
                    left = self.queue.drain() + self._in_flight
                    if left:
                        why = "plugin shutting down" if self._flush_deadline < math.inf else "pipeline failed"
                        self._drop(left, why)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self.stream.aclose()
                    except Exception:
                        log.exception("sink %s: closing the stream of %s failed", self.sink, self.container_id[:12])
                self._done.set()

    async def _next_batch(self) -> LogBatch | None:
        opts = self.options
        while True:
            queue = self.queue
            if self._closing and (not queue.entries or trio.current_time() >= self._flush_deadline):
                return None  # run() counts whatever is left as dropped, in one go
            full = queue.entries >= opts.batch_max_entries or queue.bytes >= opts.batch_max_bytes
            oldest = queue.oldest_since()
            if oldest is not None and (full or self._closing or trio.current_time() >= oldest + opts.batch_max_wait):
                return queue.take(opts.batch_max_entries, opts.batch_max_bytes)
            changed = self._changed
            if oldest is None:
                await changed.wait()
            else:
                with trio.move_on_at(oldest + opts.batch_max_wait):
                    await changed.wait()

    async def _deliver(self, batch: LogBatch) -> int:
        """Send with retries; returns how many lines are left undelivered (flush deadline)."""
        policy = self.options.retry
        started = trio.current_time()
        attempt = 0
        while True:
            result = await self._send(batch)
            if result.rejected:
                await self._dead_letter(batch, result.rejected)
            retry = list(result.retry)
            again = batch.select(retry) if retry else None
            rejected_bytes = batch.select(list(result.rejected)).nbytes if result.rejected else 0
            self.statistics.lines_out += len(batch) - len(retry) - len(result.rejected)
            self.statistics.bytes_out += batch.nbytes - (again.nbytes if again else 0) - rejected_bytes
            if again is None:
                self.statistics.failing_since = None
                self._shedding = False
                return 0
            if self.statistics.failing_since is None:
                self.statistics.failing_since = started
            batch = again
            self.statistics.retried += len(batch)
            delay = policy.delay(attempt, self.rng)
            now = trio.current_time()
            if policy.gives_up(now - started, delay, attempt):
                attempt += 1
                await self._dead_letter(batch, dict.fromkeys(range(len(batch)), f"gave up after {attempt} attempts"))
                return 0
            attempt += 1
            if self._closing and now + delay > self._flush_deadline:
                return len(batch)
            await trio.sleep(delay)

    async def _send(self, batch: LogBatch) -> SendResult:
        try:
            with trio.move_on_at(self._flush_deadline if self._closing else math.inf):
                return await self.stream.send_batch(batch)
        except Exception:
            # A sink must answer with a verdict; one that raises is treated as "retry all".
            log.exception("sink %s raised while sending %d lines; retrying them", self.sink, len(batch))
        self.statistics.send_failures += 1
        return SendResult.retry_all(len(batch))

    async def _dead_letter(self, batch: LogBatch, rejected: Mapping[int, str]) -> None:
        """Count, log (one line per batch) and keep the lines a sink refused for good.

        A sink may give each line its own reason (a bulk item error quotes the value),
        so reasons travel per line and the log line names the first and how many more.
        """
        indexes = sorted(rejected)
        reasons = [str(rejected[i]) for i in indexes]
        self.statistics.dead_lettered += len(indexes)
        others = len(set(reasons)) - 1
        log.warning(
            "sink %s rejected %d lines of %s for good: %s%s",
            self.sink,
            len(indexes),
            self.container_id[:12],
            reasons[0][:300],
            f" (and {others} other reasons)" if others else "",
        )
        if self.dead_letters is None:
            return
        lines = batch.select(indexes)
        for start in range(0, len(indexes), CHUNK):
            self.dead_letters.write(
                lines.slice(start, start + CHUNK), self.container_id, reasons[start : start + CHUNK]
            )
            await trio.lowlevel.checkpoint()

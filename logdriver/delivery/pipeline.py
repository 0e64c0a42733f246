"""One sink's pipeline for one container: its bounded queue, overflow policy and accounting.

The FIFO reader ``put``s every read batch into each of the container's
pipelines. A pipeline does not send: the ``Sender`` it is attached to
(``sender.py``, through the ``QueueListener`` interface) drains the queues of every container shipping to the same
place, builds shared requests and hands each pipeline back the verdict on its
own lines (``settle``). So limits, overflow policies, spools, drop counts and
statistics stay per container while requests and connections are per
destination.

A slow or dead destination fills only the queues that feed it; what happens
then is each queue's overflow policy (``_buffer``). Nothing is dropped
silently: every drop is counted here and logged at most every
``DROP_LOG_INTERVAL`` seconds. Nothing here can hold up ``docker stop``: the
FIFO keeps being read unless the policy is ``block``, and a block lasts at most
``block-timeout``, after which the pipeline drops (counted) until the sink
delivers again.

Its phases (open, draining, flushing, done) and what moves it between them are
a table in ``lifecycle.py``. Closing at EOF (after StopLogging) stops input; the
sender keeps delivering what is queued until it is delivered or the retry policy
gives up on it. A plugin shutdown closes with a deadline, ``flush-timeout``; what
a memory queue holds then is counted as dropped, and a disk spool keeps it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Callable, Mapping
from functools import partial
from typing import Protocol

import trio

from logdriver._native import LogBatch
from logdriver.abc import SendResult, SinkStream
from logdriver.config.pipeline_options import Overflow, PipelineOptions
from logdriver.delivery.budget import Allowance
from logdriver.delivery.dead_letters import CHUNK, DeadLetters
from logdriver.delivery.lifecycle import Event, Lifecycle, Phase
from logdriver.delivery.memory_queue import BatchQueue, LineQueue, Offer, QueueView
from logdriver.delivery.pipeline_statistics import PipelineCounters, PipelineStatistics
from logdriver.delivery.spill_queue import SpillQueue
from logdriver.delivery.spool import DiskQueue, SpoolReadError

log = logging.getLogger("logdriver.pipeline")

DROP_LOG_INTERVAL = 10.0


MAX_SPILL_ENTRIES = 1 << 62  # a spill is bounded by its bytes (spill-max-bytes, the disk share)


def _open_spill(
    directory: str, options: PipelineOptions, disk: Allowance | None, memory: Allowance | None
) -> DiskQueue:
    """The disk part of a ``buffer=hybrid`` queue, made on its first spill."""
    return DiskQueue(
        directory,
        options.spill_max_bytes,
        MAX_SPILL_ENTRIES,
        options.overflow,
        now=trio.current_time(),
        disk=disk,
        memory=memory,
        durable=False,
    )


class QueueListener(Protocol):
    """What a pipeline tells the sender it is attached to."""

    def notify(self, pipeline: SinkPipeline, lines: int) -> None:
        """``lines`` were queued (0: the pipeline's phase changed)."""

    def wake(self) -> None:
        """Look at the queues now: a writer is held by a full queue."""


class SinkPipeline:
    """Feed with ``put``; end with ``close``. A ``Sender`` delivers its lines
    (``sender.run_alone`` gives it one of its own: tests and single-container use)."""

    def __init__(
        self,
        sink: str,
        container_id: str,
        stream: SinkStream,
        options: PipelineOptions,
        dead_letters: DeadLetters | None = None,
        rng: random.Random | None = None,
        spool_dir: str | None = None,
        spill_dir: str | None = None,
        memory: Allowance | None = None,
        disk: Allowance | None = None,
        on_finish: Callable[[SinkPipeline], None] | None = None,
    ) -> None:
        self.sink = sink
        self.container_id = container_id
        self.stream = stream
        self.options = options
        self.queue: LineQueue
        if options.buffer == "disk":
            if spool_dir is None:
                raise ValueError("buffer=disk needs a spool directory")
            self.spool_dir: str | None = spool_dir
            self.queue = DiskQueue(
                spool_dir,
                options.buffer_max_bytes,
                options.buffer_max_entries,
                options.overflow,
                now=trio.current_time(),
                disk=disk,
                memory=memory,
            )
        elif options.buffer == "hybrid" and spill_dir is not None and options.spill_max_bytes > 0:
            self.spool_dir = None
            memory_part = BatchQueue(options.buffer_max_bytes, options.buffer_max_entries, Overflow.BLOCK, memory)
            self.queue = SpillQueue(memory_part, partial(_open_spill, spill_dir, options, disk, memory), spill_dir)
        else:  # memory, or hybrid with nowhere (or nothing) to spill
            self.spool_dir = None
            self.queue = BatchQueue(options.buffer_max_bytes, options.buffer_max_entries, options.overflow, memory)
        self.dead_letters = dead_letters
        self.disk = disk  # held: the container's share lives as long as its pipelines (dead letters draw on it)
        self.rng = rng or random.Random()
        # What the sender reads of the queue (each request looks at every ready pipeline's).
        self.backlog: QueueView = self.queue
        self.counters = PipelineCounters()
        self.lifecycle = Lifecycle()
        self.flush_deadline = math.inf  # the lifecycle's deadline, kept here for the sender's every request
        # After its FIFO ended, when a retry comes too late: what it holds is given up then
        # (a destination its container's log-opts chose: LOGDRIVER_STOPPED_DRAIN_MAX_TIME).
        self.give_up_at = math.inf
        self._listener: QueueListener | None = None
        self._on_finish = on_finish  # the owner's accounting
        self.failing_since: float | None = None  # when sends started failing (None: healthy)
        self.in_flight = 0  # lines handed to the sender and not yet settled
        self.producer_waiting = False  # a put waits for room (block): the queue should go out now
        self.closed_cleanly = False  # ended with nothing undelivered (a spool may then be deleted)
        self._space = trio.Event()
        self._shedding = False  # block timed out and the sink has not recovered since
        self._unlogged_drops: dict[str, int] = {}  # reason → lines dropped since the last log line
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._done = trio.Event()

    # -- producer side ---------------------------------------------------------

    def try_put(self, batch: LogBatch, *, wait: bool = True) -> bool:
        """Queue a batch under the overflow policy without waiting; False when
        ``block`` says wait (nothing was taken: call ``put`` with it). With
        ``wait=False`` (the FIFO is closing) such a batch is dropped, counted."""
        offer = self._offer(batch)
        if offer.must_wait and wait and not self._shedding and not self.closing:
            return False
        self._count_in(batch)
        self._settle_offer(batch, offer)
        return True

    async def put(self, batch: LogBatch) -> None:
        """Queue a batch under the overflow policy; waits only under ``block``."""
        if not batch:
            return
        offer = self._offer(batch)
        self._count_in(batch)
        if offer.must_wait and not self._shedding:
            self.producer_waiting = True
            if self._listener is not None:
                self._listener.wake()  # a full queue with its writer held: send it now
            try:
                with trio.move_on_after(self.options.block_timeout):
                    while offer.must_wait and not self.closing:
                        await self._space.wait()
                        offer = self._offer(batch)
            except BaseException:  # cancelled: the FIFO is closing; count the batch
                if offer.must_wait:
                    self._drop(len(batch), "FIFO closed while waiting for room")
                raise
            finally:
                self.producer_waiting = False
            # Blocked too long: stop blocking until the sink takes lines again, so that
            # a dead destination costs the container one block-timeout, not one per read.
            self._shedding = offer.must_wait
        self._settle_offer(batch, offer)

    def _count_in(self, batch: LogBatch) -> None:
        self.counters.lines_in += len(batch)
        self.counters.bytes_in += batch.nbytes

    def _settle_offer(self, batch: LogBatch, offer: Offer) -> None:
        if offer.must_wait:
            self._drop(len(batch), f"sink stuck past block-timeout ({self.options.block_timeout:g} s)")
        if offer.dropped:
            self._drop(offer.dropped, f"buffer full ({self.options.overflow.value})")
        self.counters.spilled += offer.spilled
        if offer.accepted and self._listener is not None:
            self._listener.notify(self, offer.accepted)

    def _offer(self, batch: LogBatch) -> Offer:
        try:
            return self.queue.offer(batch, trio.current_time())
        except OSError as exc:  # a spool on a full disk, or out of descriptors
            self._drop(len(batch), f"spool write failed: {exc.strerror}")
            return Offer()

    def attach(self, listener: QueueListener) -> None:
        """The sender that delivers this pipeline's lines from now on."""
        self._listener = listener

    @property
    def phase(self) -> Phase:
        return self.lifecycle.phase

    @property
    def closing(self) -> bool:
        """No more input: draining, flushing or done."""
        return not self.lifecycle.taking_input

    @property
    def queued(self) -> int:
        """Lines not yet delivered: queued, and handed to the sender."""
        return self.queue.undelivered

    def close(self, deadline: float = math.inf) -> None:
        """No more puts: deliver what is queued, then stop (in the plugin, only ``Deliveries`` calls this).

        With the default deadline the sender keeps going until everything is
        delivered or given up by the retry policy; a plugin shutdown passes one.
        An earlier deadline replaces a later one.
        """
        self.lifecycle.apply(Event.END_INPUT)
        if deadline < math.inf:
            self.lifecycle.apply(Event.DEADLINE, deadline)
            self.flush_deadline = self.lifecycle.deadline
        self._space.set()
        if self._listener is not None:
            self._listener.notify(self, 0)

    async def finished(self) -> None:
        """Wait until the pipeline has stopped and its stream is closed."""
        await self._done.wait()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def aclose(self) -> None:
        """Close with ``flush-timeout`` as the deadline, and wait until it has stopped."""
        self.close(trio.current_time() + self.options.flush_timeout)
        await self._done.wait()

    def statistics(self, now: float) -> PipelineStatistics:
        """Counters and gauges of this pipeline now."""
        oldest = self.queue.oldest_since()
        failing_for = 0.0 if self.failing_since is None else now - self.failing_since
        return PipelineStatistics(
            totals=dataclasses.replace(self.counters),
            buffer_lines=self.queue.entries,
            buffer_bytes=self.queue.bytes,
            spool_bytes=self.queue.spooled_bytes,
            oldest_age=0.0 if oldest is None else now - oldest,
            failing_for=failing_for,
            operator_failing_for=0.0 if self.options.container_destination else failing_for,
            draining=int(self.phase is Phase.DRAINING),
        )

    def _loss_reason(self) -> str:
        if self.flush_deadline < math.inf:
            return "plugin shutting down"
        if self.give_up_at < math.inf:
            return "its container stopped and the destination it chose stayed unreachable"
        return "pipeline failed"

    def _drop(self, count: int, reason: str) -> None:
        self.counters.dropped += count
        self._unlogged_drops[reason] = self._unlogged_drops.get(reason, 0) + count
        now = trio.current_time()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL or self.closing:
            log.warning(
                "sink %s dropped %d lines of container %s (%s); %d dropped in all",
                self.sink,
                sum(self._unlogged_drops.values()),
                self.container_id[:12],
                "; ".join(f"{why}: {n}" for why, n in self._unlogged_drops.items()),
                self.counters.dropped,
            )
            self._unlogged_drops.clear()
            self._last_drop_log = now

    # -- sender side ------------------------------------------------------

    def take(self, max_entries: int, max_bytes: int) -> LogBatch | None:
        """Lines for the next request (at least one, if any are queued)."""
        try:
            batch = self.queue.take(max_entries, max_bytes)
        except SpoolReadError as exc:
            # Lost from this container's spool, counted; the destination and the others go on.
            log.error(
                "sink %s: %d spooled lines of %s cannot be read back: %s",
                self.sink,
                exc.lines,
                self.container_id[:12],
                exc,
            )
            self.in_flight += exc.lines
            self.discard_lines(exc.lines, "spool read failed")
            return None
        if batch is not None:
            self.in_flight += len(batch)
            self._space.set()
            self._space = trio.Event()
        return batch

    async def settle(self, batch: LogBatch, result: SendResult, started: float) -> LogBatch | None:
        """Account for the verdict on ``batch``; returns the lines to send again, if any."""
        if result.rejected:
            await self._dead_letter(batch, result.rejected)
        retry = list(result.retry)
        again = batch.select(retry) if retry else None
        rejected_bytes = batch.select(list(result.rejected)).nbytes if result.rejected else 0
        delivered = len(batch) - len(retry) - len(result.rejected)
        self.counters.lines_out += delivered
        self.counters.bytes_out += batch.nbytes - (again.nbytes if again else 0) - rejected_bytes
        self.in_flight -= len(batch) - len(retry)
        if again is None:
            self.failing_since = None
            self._shedding = False
            if not self.in_flight:
                self._ack()
            return None
        if self.failing_since is None:
            self.failing_since = started
        self.counters.retried += len(again)
        return again

    async def give_up(self, batch: LogBatch, attempts: int) -> None:
        """The retry policy gave up on ``batch``: dead letters."""
        await self._dead_letter(batch, dict.fromkeys(range(len(batch)), f"gave up after {attempts} attempts"))
        self.in_flight -= len(batch)
        if not self.in_flight:
            self._ack()

    def discard(self, batch: LogBatch, reason: str) -> None:
        """Give up on ``batch`` without a verdict (the sink's answer was unusable): dropped, counted."""
        self.discard_lines(len(batch), reason)

    def discard_lines(self, count: int, reason: str) -> None:
        """Give up on ``count`` lines handed out: dropped, counted."""
        self._drop(count, reason)
        self.in_flight -= count
        if not self.in_flight:
            self._ack()

    def _ack(self) -> None:
        try:
            self.queue.ack()
        except OSError as exc:
            # A spool cursor that cannot be written (full disk): the lines are delivered, and a
            # restart would send them again (at least once), never lose them.
            log.error("sink %s: cannot move the spool cursor of %s: %s", self.sink, self.container_id[:12], exc)

    def count_send_failure(self) -> None:
        self.counters.send_failures += 1

    async def finish(self) -> None:
        """Stop for good (the sender calls this once): what is left is dropped
        (counted) from memory or kept in the spool, and the stream is closed."""
        if self._done.is_set():
            return
        self.lifecycle.apply(Event.FINISH)
        self.closed_cleanly = not self.queue.undelivered
        kept = self.queue.undelivered
        try:
            lost = self.queue.close(self.in_flight)
            if lost:
                self._drop(lost, self._loss_reason())
            elif kept:
                log.warning("sink %s: %d lines of %s stay in the disk spool", self.sink, kept, self.container_id[:12])
        except OSError as exc:  # a spool's last fsync on a failing disk: its files stay as they are
            log.error("sink %s: closing the spool of %s failed: %s", self.sink, self.container_id[:12], exc)
        finally:
            self._space.set()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                try:
                    await self.stream.aclose()
                except Exception:
                    log.exception("sink %s: closing the stream of %s failed", self.sink, self.container_id[:12])
            self._done.set()
            if self._on_finish is not None:
                self._on_finish(self)

    async def _dead_letter(self, batch: LogBatch, rejected: Mapping[int, str]) -> None:
        """Count, log (one line per batch) and keep the lines a sink refused for good.

        A sink may give each line its own reason (a bulk item error quotes the value),
        so reasons travel per line and the log line names the first and how many more.
        """
        indexes = sorted(rejected)
        reasons = [str(rejected[i]) for i in indexes]
        self.counters.dead_lettered += len(indexes)
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

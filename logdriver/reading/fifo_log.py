"""One FIFO from StartLogging to its end: reader slot, decoder, store, pipelines, accounting.

The hub (``_fifo.FifoHub``) hands ``receive`` the bytes of each round. They
are decoded, appended to the ``docker logs`` store and put into each of the
container's pipelines, synchronously: a FIFO costs no task of its own. Only a
pipeline under ``block`` that is full makes it wait; then the FIFO is paused
in the hub (its pipe fills and only its container's writes block), a task
waits for room (at most ``block-timeout``) and replays what was read meanwhile.

With multiline or ``parse=json`` set, a processing stage (``logdriver._native.Stage``)
sits between the decoder and the pipelines: it holds an open event until its rule ends
it, a limit cuts it, or its timeout passes (``Deadlines`` calls ``flush_due``). What it
holds is charged to the memory budget with the open partial lines, and sent at the end.
A read of more than ``INLINE_BYTES`` (64 KiB) is processed in a worker thread without the GIL
(``PROCESSING_THREADS`` of them for every container), so that what a container's patterns
and JSON cost is never the event loop's; meanwhile its FIFO is paused as for a full
``block`` pipeline, and the stage's own CPU allowance bounds how long one call may take.
A smaller read of a stage that was not costly lately (``Stage.cheap``: no call over 40 ns
a byte in 10 s) is processed on the loop: less than the hand-off to a thread that a
trickle of lines would pay on every read; a costly pattern pays that once in 10 s at most.
Any read of a light stage (``Stage.light``: a rate limit or ``min-level`` alone, whose
cost per line is a small constant of ours) is processed on the loop, as it is decoded.
A ``block`` rate limit holds lines over the rate in the stage and releases them as it
refills (``flush_due``); while it holds any (``Stage.holds_back``) the FIFO is paused
and the pipe fills, so the container's writes slow to the rate; every ``MAX_HOLD`` it
reads ``TRICKLE_BYTES`` (held in turn) so that a stopped container's stop is not held.

The end comes at EOF (after StopLogging), after a read error, at the stop
deadline or at plugin shutdown (``close``). The pipelines are then released:
they deliver what they hold however long a destination is down, unless the
plugin is shutting down. Nothing here may end the plugin: an unexpected error
ends this FIFO only, counted and logged.
"""

from __future__ import annotations

import errno as errnos
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from logdriver._exceptions import is_native_panic
from logdriver._framing import DEFAULT_MAX_FRAME_SIZE
from logdriver._native import FrameReader, LogBatch, Stage
from logdriver.abc import ContainerContext
from logdriver.config.processing import MAX_HOLD
from logdriver.delivery.budget import Allowance
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.totals import FifoStatistics
from logdriver.reading.deadlines import Deadlines
from logdriver.reading.fifo_accounts import FifoAccounts
from logdriver.store.log_store import LogStore

log = logging.getLogger("logdriver.driver")

# Worker threads that run every container's processing stage: the host's two cores'
# worth, so that processing never takes trio's default thread pool from the sinks.
PROCESSING_THREADS = 2
# A read at most this big, of a stage not costly lately, is processed on the event loop: at
# the costliest pattern that compiles about 5 ms (tests/unit/test_costly_processing.py),
# and then the stage is costly for 10 s. A cheap stage's read of this size costs less
# than the hand-off to a worker thread, which cost a container flat out 0.5 µs a line.
INLINE_BYTES = 64 << 10
INLINE_LINES = 512
# What a block rate limit reads of a FIFO it has held MAX_HOLD: more than one daemon write
# (a 16 KiB line and its frame), so that the write in progress completes.
TRICKLE_BYTES = 32 << 10
_processing_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("processing_limiter")


def processing_limiter() -> trio.CapacityLimiter:
    try:
        return _processing_limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(PROCESSING_THREADS)
        _processing_limiter.set(limiter)
        return limiter


@dataclass(frozen=True, slots=True)
class Reconfiguration:
    """A running container's new options (an operator policy changed), to take between two
    read batches: its context, its stage, and its pipelines after the switch (those it keeps
    and those opened for it). ``left_behind`` gets the pipelines it no longer uses, to drain."""

    context: ContainerContext
    stage: Stage | None
    pipelines: dict[str, SinkPipeline]
    left_behind: Callable[[dict[str, SinkPipeline]], None]


@dataclass(slots=True)
class _Stall:
    """A read batch that ``block`` pipelines had no room for: the FIFO is paused in the hub,
    later rounds wait in the backlog, and a task puts the batch when there is room."""

    batch: LogBatch
    waiting: list[SinkPipeline]  # the pipelines still to take it, in order
    unprocessed: bool = False  # the batch waits for the processing stage (in a worker thread)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # a close cancels the wait
    after: Callable[[], None] | None = None  # once every pipeline took the batch (a switch's drains)
    done: trio.Event = field(default_factory=trio.Event)


class FifoLog:
    """Made by the Driver after StartLogging's checks; ``start`` attaches it to the hub."""

    def __init__(
        self,
        path: str,
        context: ContainerContext,
        fd: int,
        pipelines: dict[str, SinkPipeline],
        store: LogStore,
        memory: Allowance,
        on_closed: Callable[[FifoLog, bool, bool], None],  # (fifo, unregister, shutting down)
        deadlines: Deadlines | None = None,
        stage: Stage | None = None,  # the driver's, with the plugin's redaction key
    ) -> None:
        self.path = path
        self.context = context
        self.fd = fd
        self.pipelines = pipelines
        self.store = store
        self.memory = memory
        self._on_closed = on_closed
        options = context.options
        self.decoder = FrameReader(DEFAULT_MAX_FRAME_SIZE, options.partial_max_size)
        if stage is None and options.processing is not None:
            stage = options.processing.stage()
        self._stage = stage
        # redact-store: the store keeps lines after redaction, not the raw frames.
        self._redacts_store = stage is not None and stage.redacts_store
        self._deadlines = deadlines if deadlines is not None else Deadlines()
        # no-file (the Loki driver's): no docker logs copy for this container.
        self._writer: Any = (
            None
            if options.no_file
            else store.open_writer(context.info.container_id, options.store_max_size, options.store_max_file)
        )
        self._accounts = FifoAccounts(path, context.info.short_id)
        self.stop_requested = False
        self.closed = trio.Event()
        self.key = 0
        self._hub: Any = None
        self._nursery: trio.Nursery | None = None
        self._stall: _Stall | None = None  # a block sink is full: rounds wait in the backlog
        self._backlog: list[bytes] = []
        self._end: tuple[bool, int] | None = None  # (eof, errno) once the hub reported the end
        self._closing = False
        self._partial_bytes = 0
        self._rate_held_since: float | None = None  # a block rate limit stopped reading then
        self._rate_paused = False  # the hub was told to pause for the rate limit
        self._pending: Reconfiguration | None = None  # taken when no read batch is in flight

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def processes(self) -> bool:
        """Whether this FIFO has a processing stage now, or had one (its counters are kept)."""
        return self._stage is not None or self._accounts.retired

    def reconfigure(self, change: Reconfiguration) -> None:
        """Take new options between two read batches: now, or when the batch in flight (held
        back by a full ``block`` pipeline or in a worker thread) has been put. A later change
        replaces one not yet taken (its new pipelines are left behind, empty)."""
        if self._pending is not None:
            kept = set(map(id, change.pipelines.values())) | set(map(id, self.pipelines.values()))
            change.left_behind({n: p for n, p in self._pending.pipelines.items() if id(p) not in kept})
        self._pending = change
        if self._stall is None and not self._closing:
            self._switch()

    def _switch(self) -> None:
        """The old stage ends first (its open events and held lines go, in order, to the old
        pipelines), then the new options take every line read after. The decoder (open
        partial lines), the docker logs writer and the pipelines kept carry over."""
        change, self._pending = self._pending, None
        if change is None:
            return
        now = trio.current_time()
        if self._stage is not None:
            tail = self._stage.finish(now)
            if self._closing:
                self._put_now(tail)
            else:  # a full block pipeline holds the FIFO back for it, as for any batch
                self._deliver(tail)
            self._accounts.retire_stage(self._stage.statistics())
        left = {name: pipe for name, pipe in self.pipelines.items() if change.pipelines.get(name) is not pipe}
        self.context, self._stage, self.pipelines = change.context, change.stage, change.pipelines
        self._redacts_store = self._stage is not None and self._stage.redacts_store
        self._deadlines.discard(self)
        if self._stall is not None:  # they drain once they hold the old stage's last lines
            self._stall.after = lambda: change.left_behind(left)
        else:
            change.left_behind(left)
        self._charge_partial(self._held_bytes())  # the old stage's events are out: it only shrinks
        if not self._closing and self._stall is None:
            self._arm()
            self._hold_for_rate()

    def request_stop(self) -> bool:
        """StopLogging came: EOF follows, and the FIFO leaves the registry. False if it already had."""
        first = not self.stop_requested
        self.stop_requested = True
        if self._rate_held_since is not None:
            self._hold_for_rate()  # read the rest now
        return first

    def start(self, hub: Any, nursery: trio.Nursery) -> None:
        self._hub = hub
        self._nursery = nursery
        self.key = hub.add(self.fd, self)

    # -- the hub's side ----------------------------------------------------------

    def receive(self, data: bytes, eof: bool, errno: int) -> None:
        """A round's bytes; ``eof`` or ``errno`` when the FIFO ended. Never raises."""
        try:
            if self._stall is not None:
                if data:
                    self._backlog.append(data)
            elif data:
                self._feed(data)
            if (eof or errno) and self._end is None:
                self._end = (eof, errno)
                if self._stall is None:
                    self._begin_close()
        except BaseException as exc:
            self._fail_unless_cancelled(exc)

    def catch_up(self) -> None:
        """Take in what the FIFO holds right now (before ``docker logs`` reads the store)."""
        if self._hub is not None and self._stall is None and not self._closing:
            self.receive(*self._hub.read_now(self.key))

    def _feed(self, data: bytes) -> None:
        raw, batch = self.decoder.feed(data)
        if raw and not self._redacts_store:
            self._store(raw)
        self._accounts.decoder_errors(self.decoder)
        if self._stage is not None and batch:
            big = batch.nbytes > INLINE_BYTES or len(batch) > INLINE_LINES
            if (big or not self._stage.cheap) and not self._stage.light:
                self._hold_back(_Stall(batch, [], unprocessed=True))
                return
            # A small read is processed here: its cost is bounded (the matcher's per byte),
            # below a worker thread's hand-off, which a trickle would pay on every read.
            batch = self._processed(batch)
        self._deliver(self._with_cut(batch))
        self._arm()

    def _with_cut(self, batch: LogBatch) -> LogBatch:
        cut = self._charge_partial(self._held_bytes())
        if cut is not None:  # after the lines completed in this read (one batch: one delivery)
            batch = LogBatch.concat([batch, cut]) if batch else cut
        return batch

    # -- the processing stage -------------------------------------------------------

    def _processed(self, batch: LogBatch) -> LogBatch:
        """``batch`` through the stage, redacted and stored first with ``redact-store``."""
        if self._stage is None or not batch:
            return batch
        now = trio.current_time()
        if self._redacts_store:
            batch = self._stage.redact(batch, now)
            self._store_redacted(batch)
        return self._stage.process(batch, now)

    def _store_redacted(self, batch: LogBatch) -> None:
        """With ``redact-store``, the store keeps the redacted lines (not the raw frames:
        those hold what was redacted), in Docker's 16 KiB pieces as the raw frames were."""
        if batch:
            self._store(batch.to_docker_frames())

    def _redact_and_process(self, batch: LogBatch, now: float) -> tuple[LogBatch, LogBatch]:
        """In a worker thread: (the batch redacted for the store, the stage's output)."""
        assert self._stage is not None
        redacted = self._stage.redact(batch, now) if self._redacts_store else batch
        return redacted, self._stage.process(redacted, now)

    def _held_bytes(self) -> int:
        """Memory held open: partial lines, and the stage's open events."""
        held = self.decoder.open_bytes
        return held + self._stage.held_bytes if self._stage is not None else held

    def _arm(self) -> None:
        if self._stage is not None:
            self._hold_for_rate()
            when = self._stage.next_deadline()
            if self._rate_held_since is not None:
                held_until = self._rate_held_since + MAX_HOLD
                when = held_until if when is None else min(when, held_until)
            if when is not None:
                self._deadlines.schedule(self, when)

    def flush_due(self, now: float) -> None:
        """Send the events whose time is up (``Deadlines`` calls this); never while a
        ``block`` sink holds the FIFO back: those go after what it waits to put."""
        if self._stage is None or self._closing or self._stall is not None:
            return
        try:
            batch = self._stage.flush_due(now)
            cut = self._charge_partial(self._held_bytes())  # held bytes only shrink here: None
            self._deliver(LogBatch.concat([batch, cut]) if cut is not None else batch)
            if self._rate_held_since is not None and now - self._rate_held_since >= MAX_HOLD:
                self._trickle(now)
            self._arm()
        except BaseException as exc:
            self._fail_unless_cancelled(exc)

    def _deliver(self, batch: LogBatch) -> None:
        if not batch:
            return
        self._accounts.counts.records += len(batch)
        waiting = [pipeline for pipeline in self.pipelines.values() if not pipeline.try_put(batch)]
        if waiting:
            self._hold_back(_Stall(batch, waiting))

    def _hold_for_rate(self) -> None:
        """Stop reading while a ``block`` rate limit holds lines back: the pipe fills and the
        container's writes slow to the rate. Never after StopLogging (the container is gone:
        what is left is read at once)."""
        holds = self._stage is not None and self._stage.holds_back and not self.stop_requested
        if not holds:
            self._rate_held_since = None
        elif self._rate_held_since is None:
            self._rate_held_since = trio.current_time()
        paused = self._rate_held_since is not None
        if paused != self._rate_paused and self._stall is None and not self._closing and self._hub is not None:
            self._hub.pause(self.key, paused)  # only on a change: each call re-arms the poller
            self._rate_paused = paused

    def _trickle(self, now: float) -> None:
        """Held ``MAX_HOLD``: read ``TRICKLE_BYTES`` (held in turn), so that the daemon's
        write in progress completes. Unread, a stopped container's stop would wait for the
        whole hold: dockerd's Close takes the lock that write holds."""
        self._rate_held_since = now
        self.receive(*self._hub.read_some(self.key, TRICKLE_BYTES))

    def _hold_back(self, stall: _Stall) -> None:
        """Pause the FIFO while ``stall``'s batch is processed or waits for room."""
        assert self._nursery is not None
        self._hub.pause(self.key, True)
        self._stall = stall
        self._nursery.start_soon(self._wait_for_room, stall)

    async def _wait_for_room(self, stall: _Stall) -> None:
        with stall.scope:
            try:
                if stall.unprocessed:
                    await self._process(stall)
                while stall.waiting and not self._closing:
                    # At most block-timeout, then it drops (counted); cancelled, it counts the batch too.
                    await stall.waiting.pop(0).put(stall.batch)
                if stall.after is not None:
                    stall.after()
                self._stall = None
                self._switch()  # a reconfiguration waited for this batch
                if self._stall is not None:  # the old stage's last lines wait for room in turn
                    return
                backlog, self._backlog = self._backlog, []
                for index, data in enumerate(backlog):
                    self._feed(data)
                    if self._stall is not None:  # held back again: keep the rest, in order
                        self._backlog = backlog[index + 1 :] + self._backlog
                        return
                if self._end is not None:
                    self._begin_close()
                elif not self._closing:
                    self._hub.pause(self.key, False)
                    self._rate_paused = False
                    self._arm()  # a due event waited for the stall; a rate limit may pause again
            except BaseException as exc:
                self._fail_unless_cancelled(exc)
            finally:
                stall.done.set()

    async def _process(self, stall: _Stall) -> None:
        """Run the stage on ``stall``'s batch in a worker thread, then offer the result to every
        pipeline; those without room are left waiting. Shielded: a close waits for it (one call
        is bounded by the stage's CPU allowance) and then sends what it made."""
        assert self._stage is not None
        with trio.CancelScope(shield=True):
            redacted, processed = await trio.to_thread.run_sync(
                self._redact_and_process, stall.batch, trio.current_time(), limiter=processing_limiter()
            )
        if self._redacts_store:
            self._store_redacted(redacted)  # before the reads that wait behind this one
        batch = self._with_cut(processed)
        stall.batch, stall.unprocessed = batch, False
        if batch:
            self._accounts.counts.records += len(batch)
            stall.waiting = [pipeline for pipeline in self.pipelines.values() if not pipeline.try_put(batch)]

    def _fail_unless_cancelled(self, exc: BaseException) -> None:
        """An error, a bug or a native panic ends this FIFO only; anything else goes on up."""
        if not isinstance(exc, Exception) and not is_native_panic(exc):
            raise exc
        self._fail()

    def _fail(self) -> None:
        self.failed = True
        log.exception("FIFO %s of %s failed; the plugin carries on without it", self.path, self.context.info.short_id)
        self._end = self._end or (False, errnos.EIO)
        self._begin_close()

    failed = False

    # -- the end -------------------------------------------------------------------

    def _begin_close(self) -> None:
        if not self._closing and self._nursery is not None:
            self._nursery.start_soon(self.close)

    async def close(self, shutting_down: bool = False) -> None:
        """Stop reading and release the pipelines; idempotent. A plugin shutdown keeps the FIFO registered."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        if self._stall is not None:
            self._stall.scope.cancel()
            with trio.CancelScope(shield=True):
                await self._stall.done.wait()
        reached_eof = self._end is not None and self._end[0]
        try:
            leftover = self._hub.remove(self.key) if self._hub is not None else b""
            if self._end is not None and self._end[1]:
                log.error(
                    "FIFO %s of %s: read failed: %s", self.path, self.context.info.short_id, os.strerror(self._end[1])
                )
            # What was read and not yet put goes in now, without waiting for a block sink.
            if self._stall is not None:
                for pipeline in self._stall.waiting:
                    pipeline.try_put(self._stall.batch, wait=False)
                if self._stall.after is not None:
                    self._stall.after()
                self._stall = None
            self._switch()  # one not yet taken: the rest goes by the new options
            for data in [*self._backlog, leftover]:
                if data:
                    self._feed_now(data)
            self._backlog.clear()
            if not self.failed:
                self._put_now(self._processed(self.decoder.finish()))
                if self._stage is not None:
                    self._put_now(self._stage.finish(trio.current_time()))
        except Exception:
            self.failed = True
            log.exception("FIFO %s of %s failed while closing", self.path, self.context.info.short_id)
        finally:
            try:
                self._charge_partial(0)
            finally:
                # Whatever failed above, the descriptors go and the driver hears of it:
                # a FIFO left half-closed would hold its container's docker stop.
                if self._writer is not None:
                    self.store.close_writer(self._writer)
                self._deadlines.discard(self)
                fd, self.fd = self.fd, -1
                try:
                    os.close(fd)
                except OSError as exc:
                    log.error("closing FIFO %s failed: %s", self.path, exc)
                self.closed.set()
                self._on_closed(self, reached_eof or self.stop_requested, shutting_down)
                self._accounts.closed(self.statistics(), reached_eof)

    def _feed_now(self, data: bytes) -> None:
        raw, batch = self.decoder.feed(data)
        if raw and not self._redacts_store:
            self._store(raw)
        self._put_now(self._processed(batch))

    def _put_now(self, batch: LogBatch) -> None:
        if batch:
            self._accounts.counts.records += len(batch)
            for pipeline in self.pipelines.values():
                pipeline.try_put(batch, wait=False)

    # -- accounting ----------------------------------------------------------------

    def _store(self, raw: bytes) -> None:
        """Append to the docker logs store; a full disk costs docker logs these lines, never the sinks."""
        if self._writer is None:
            return
        try:
            self.store.append(self._writer, raw)
        except OSError as exc:
            self._accounts.store_failed(exc)

    def _charge_partial(self, open_bytes: int) -> LogBatch | None:
        """The decoder's open partial lines count against the memory budget, with refusal:
        when it has no room for their growth, they are sent now as pieces (marked partial,
        counted as cut, logged) and their memory is freed. Returns those pieces."""
        growth = open_bytes - self._partial_bytes
        if growth <= 0 or self.memory.try_take(growth):
            if growth < 0:
                self.memory.give(-growth)
            self._partial_bytes = open_bytes
            return None
        cut = self.decoder.cut_open()
        pieces = len(cut)
        if self._stage is not None:
            events = self._stage.cut_open(trio.current_time())  # counted by the step that held them
            cut = LogBatch.concat([self._processed(cut), events])
        self.memory.give(self._partial_bytes)
        self._partial_bytes = self._held_bytes()
        self.memory.take(self._partial_bytes)
        self._accounts.budget_cut(pieces)
        return cut

    def statistics(self) -> FifoStatistics:
        """This FIFO's counters now (while a worker thread holds the stage, its last ones read)."""
        stage = self._stage
        if stage is not None and not (self._stall is not None and self._stall.unprocessed):
            return self._accounts.statistics(self.decoder, stage.statistics())
        return self._accounts.statistics(self.decoder, None if stage is not None else {})

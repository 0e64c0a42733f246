"""The Driver: owns every FIFO task and answers the plugin RPCs.

One task per FIFO, keyed by the FIFO path (not the container: a stopped
container's ``docker logs`` opens a throw-away FIFO for the same ID, and a
live-restore re-attach opens a second one). Each task reads the pipe in
batches, appends the raw frames to the ReadLogs store, rejoins split lines
and hands them to the container's sink streams.

StopLogging only marks the FIFO as stopping and answers at once: the daemon
closes its write end after the reply, and the task drains to EOF. If EOF has
not come ``stop_timeout`` seconds later the task gives up on the FIFO.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from . import _rpc
from ._budget import Budget
from ._context import container_context
from ._delivery import Deliveries
from ._fifo import FifoReader, open_fifo
from ._framing import DEFAULT_MAX_FRAME_SIZE
from ._native import FrameReader, LogBatch
from ._options import Settings
from ._pipeline import SinkPipeline, SinkSnapshot
from ._readlogs import read_logs
from ._registry import FifoRegistry
from ._store import LogStore
from ._totals import FifoStatistics, Totals
from .abc import ContainerContext, Sink

log = logging.getLogger("logdriver.driver")


@dataclass(slots=True)
class _Fifo:
    path: str
    context: ContainerContext
    fd: int
    read_size: int
    pipelines: dict[str, SinkPipeline]
    stop_requested: trio.Event = field(default_factory=trio.Event)
    read_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    decoder: FrameReader | None = None
    finished: trio.Event = field(default_factory=trio.Event)
    errors_reported: int = 0
    errors_reported_at: float = -math.inf
    store_error_logged_at: float = -math.inf
    partial_bytes: int = 0  # the decoder's open partial lines, charged to the memory budget
    statistics: FifoStatistics = field(default_factory=FifoStatistics)


class Driver:
    """Implements ``_server.Handler``; run it with ``await nursery.start(driver.run)``."""

    def __init__(self, settings: Settings, sinks: Mapping[str, Sink], store: LogStore, registry: FifoRegistry) -> None:
        self.settings = settings
        self.sinks = dict(sinks)
        self.store = store
        self.registry = registry
        # EOF must follow StopLogging at once (the daemon closes right after our reply);
        # 30 s covers a daemon stalled under load.
        self.stop_timeout = 30.0
        self.follow_heartbeat = settings.follow_heartbeat
        # Asks the Docker API which of these containers are gone; None when there is no API.
        self.container_exists: Callable[[list[str]], Awaitable[set[str]]] | None = None
        self._fifos: dict[str, _Fifo] = {}
        self.active_reads = 0
        self.fifo_failures = 0  # FIFO tasks that ended on an unexpected error (the plugin carried on)
        self._nursery: trio.Nursery | None = None
        self.totals = Totals()
        self.memory = Budget("memory", settings.memory_max_bytes)
        self.disk = Budget("disk", settings.disk_max_bytes)
        self.deliveries = Deliveries(settings.state_dir, self.sinks, self.totals, self.memory, self.disk)

    @property
    def active_fifos(self) -> int:
        return len(self._fifos)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.deliveries.run)
            self._nursery = nursery
            self._resume()
            self.deliveries.recover(self._context_of)
            nursery.start_soon(self._collect_garbage_forever)
            task_status.started()
            await trio.sleep_forever()

    def _resume(self) -> None:
        """Reopen every FIFO a previous process was reading (the daemon never re-sends them)."""
        for path, info in self.registry.entries().items():
            try:
                _rpc.check_info(info)
                self._start(path, info)
                log.info("resumed FIFO %s for container %s", path, str(info.get("ContainerID", "?"))[:12])
            except Exception as exc:
                log.warning("dropping FIFO %s from the registry: %s", path, exc)
                self._unregister(path)

    # -- RPC handlers ----------------------------------------------------------

    async def start_logging(self, command: _rpc.StartLogging) -> None:
        if command.file in self._fifos:
            return  # a retried request: already reading it
        self._start(command.file, command.info)
        try:
            self.registry.add(command.file, command.info)
        except OSError as exc:
            # Logging works; only a plugin restart would lose this FIFO. Failing docker run would be worse.
            log.error(
                "cannot record FIFO %s in the registry (%s): it will not resume after a restart", command.file, exc
            )

    def _unregister(self, path: str) -> None:
        try:
            self.registry.remove(path)
        except OSError as exc:
            log.error("cannot remove FIFO %s from the registry: %s", path, exc)

    def _context_of(self, raw_info: Mapping[str, Any]) -> ContainerContext:
        return container_context(raw_info, self.settings.defaults, self.sinks, self.settings.environ)

    def _start(self, path: str, raw_info: dict[str, Any]) -> None:
        """Validate, open the FIFO and the sink pipelines, start reading; all or nothing."""
        assert self._nursery is not None, "Driver.run has not started"
        context = self._context_of(raw_info)
        fd, pipe_size = open_fifo(path, self.settings.pipe_size)
        try:
            pipelines = self.deliveries.open(path, context, raw_info)
        except BaseException:
            os.close(fd)
            raise
        fifo = _Fifo(path, context, fd, max(pipe_size, 64 << 10), pipelines)
        self._fifos[path] = fifo
        self._nursery.start_soon(self._pump, fifo)

    async def stop_logging(self, command: _rpc.StopLogging) -> None:
        fifo = self._fifos.get(command.file)
        if fifo is not None:
            fifo.stop_requested.set()

    async def read_logs(self, command: _rpc.ReadLogs) -> AsyncGenerator[bytes, None]:
        container_id = str(command.info.get("ContainerID", ""))
        frames = read_logs(
            self.store,
            container_id,
            since_ns=command.since_ns,
            until_ns=command.until_ns,
            tail=command.tail,
            follow=command.follow,
            heartbeat=self.follow_heartbeat,
        )
        self.active_reads += 1
        outcome = "client went away"
        try:
            async for data in frames:
                yield data
            outcome = "complete"
        finally:
            self.active_reads -= 1
            await frames.aclose()
            log.debug(
                "ReadLogs of %s (follow=%s, tail=%d) ended: %s",
                container_id[:12],
                command.follow,
                command.tail,
                outcome,
            )

    # -- the per-FIFO task -----------------------------------------------------

    async def _pump(self, fifo: _Fifo) -> None:
        """Read one FIFO to EOF. Nothing here may end the plugin: an unexpected error ends this FIFO only."""
        info = fifo.context.info
        options = fifo.context.options
        decoder = fifo.decoder = FrameReader(DEFAULT_MAX_FRAME_SIZE, options.partial_max_size)
        clog = self.store.open_writer(info.container_id, options.store_max_size, options.store_max_file)
        reached_eof = False
        reader = FifoReader(fifo.fd, fifo.read_size, self.settings.read_wait)
        try:
            with fifo.read_scope:  # cancelled by the stop deadline or a plugin shutdown
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._stop_deadline, fifo)
                    while chunk := await reader.receive():
                        raw, batch = decoder.feed(chunk)
                        if raw:
                            self._store(fifo, clog, raw)
                        if decoder.errors != fifo.errors_reported:
                            self._report_errors(fifo, decoder)
                        self._charge_partial(fifo, decoder.open_bytes)
                        await self._deliver(fifo, batch)
                    await self._deliver(fifo, decoder.finish())
                    reached_eof = True
                    nursery.cancel_scope.cancel()
        except Exception:
            self.fifo_failures += 1
            log.exception("FIFO %s of %s failed; the plugin carries on without it", fifo.path, info.short_id)
        finally:
            self._charge_partial(fifo, 0)
            # EOF: the pipelines deliver what they hold, however long a destination is down.
            self.deliveries.release(fifo.pipelines)
            self._record(fifo, decoder)
            self.totals.fold_fifo(fifo.statistics)
            self.store.close_writer(clog)
            with trio.CancelScope(shield=True):
                await reader.aclose()
            del self._fifos[fifo.path]
            fifo.finished.set()
            if reached_eof or fifo.stop_requested.is_set():
                self._unregister(fifo.path)
            stats = fifo.statistics
            log.info(
                "FIFO %s of %s closed%s: %d entries, %d lines, %d bytes, %d decode errors, %d corrupt frames%s",
                os.path.basename(fifo.path)[:12],
                info.short_id,
                "" if reached_eof else " before EOF",
                stats.entries,
                stats.records,
                stats.bytes,
                stats.decode_errors,
                stats.corrupt_frames,
                f", {stats.store_errors} store write errors" if stats.store_errors else "",
            )

    def _store(self, fifo: _Fifo, clog: Any, raw: bytes) -> None:
        """Append to the docker logs store; a full disk costs docker logs these lines, never the sinks."""
        try:
            self.store.append(clog, raw)
        except OSError as exc:
            fifo.statistics.store_errors += 1
            now = trio.current_time()
            if now - fifo.store_error_logged_at >= self.ERROR_LOG_INTERVAL:
                fifo.store_error_logged_at = now
                log.error(
                    "docker logs store cannot write for %s (%s); %d reads missing from docker logs so far",
                    fifo.context.info.short_id,
                    exc.strerror,
                    fifo.statistics.store_errors,
                )

    def _charge_partial(self, fifo: _Fifo, open_bytes: int) -> None:
        if open_bytes != fifo.partial_bytes:
            self.memory.give(fifo.partial_bytes)
            self.memory.take(open_bytes)
            fifo.partial_bytes = open_bytes

    async def _stop_deadline(self, fifo: _Fifo) -> None:
        await fifo.stop_requested.wait()
        await trio.sleep(self.stop_timeout)
        log.warning("no EOF on %s %.0f s after StopLogging; closing it", fifo.path, self.stop_timeout)
        fifo.read_scope.cancel()

    async def shutdown(self) -> None:
        """Stop reading every FIFO (they stay registered) and let the sinks flush.

        Each sink gets its flush-timeout; the caller bounds the whole with its grace.
        """
        fifos = list(self._fifos.values())
        for fifo in fifos:
            fifo.read_scope.cancel()
        for fifo in fifos:
            await fifo.finished.wait()
        await self.deliveries.shutdown(trio.current_time())

    async def _deliver(self, fifo: _Fifo, batch: LogBatch) -> None:
        if not batch:
            return
        fifo.statistics.records += len(batch)
        for pipeline in fifo.pipelines.values():
            await pipeline.put(batch)  # waits only for a sink whose overflow policy is block

    ERROR_LOG_INTERVAL = 60.0

    def _report_errors(self, fifo: _Fifo, decoder: FrameReader) -> None:
        """Log corrupt input as it happens, at most once a minute per FIFO (counts are cumulative)."""
        now = trio.current_time()
        if now - fifo.errors_reported_at < self.ERROR_LOG_INTERVAL:
            return
        fifo.errors_reported_at = now
        fifo.errors_reported = decoder.errors
        counts = decoder.statistics()
        log.error(
            "FIFO %s of %s: %d corrupt frame headers (%d bytes skipped to resync), %d undecodable entries so far",
            fifo.path,
            fifo.context.info.short_id,
            counts["oversize_frames"],
            counts["skipped_bytes"],
            counts["decode_errors"],
        )

    # -- statistics (for metrics and health) -------------------------------------

    def fifo_statistics(self) -> FifoStatistics:
        """Totals over every FIFO this process has read, closed and open."""
        out = dataclasses.replace(self.totals.fifos)
        for fifo in self._fifos.values():
            if fifo.decoder is not None:
                self._record(fifo, fifo.decoder, quiet=True)
            out.add(fifo.statistics)
        return out

    def sink_statistics(self) -> dict[str, SinkSnapshot]:
        """Per sink: counters over all containers, and the live queues' gauges."""
        out = self.deliveries.snapshot(trio.current_time())
        return {name: out.get(name, SinkSnapshot()) for name in {*self.sinks, *out}}

    @staticmethod
    def _record(fifo: _Fifo, decoder: FrameReader, quiet: bool = False) -> None:
        counts = decoder.statistics()
        stats = fifo.statistics
        stats.entries = counts["entries"]
        stats.bytes = counts["bytes"]
        stats.decode_errors = counts["decode_errors"]
        stats.corrupt_frames = counts["oversize_frames"]
        stats.skipped_bytes = counts["skipped_bytes"]
        if (stats.corrupt_frames or stats.decode_errors) and not quiet:
            log.error(
                "FIFO %s of %s had %d corrupt frame headers (%d bytes skipped to resync) and %d undecodable entries",
                fifo.path,
                fifo.context.info.short_id,
                stats.corrupt_frames,
                stats.skipped_bytes,
                stats.decode_errors,
            )

    # -- housekeeping ----------------------------------------------------------

    async def _collect_garbage_forever(self) -> None:
        interval = self.settings.gc_interval
        if not math.isfinite(interval) or interval <= 0:
            return
        while True:
            await trio.sleep(interval)
            removed = None
            if self.container_exists is not None:
                try:
                    removed = await self.container_exists(self.store.container_ids())
                except Exception as exc:
                    log.debug("docker API not usable for log garbage collection: %s", exc)
            try:
                collected = self.store.collect_garbage(time.time(), self.settings.store_retention, removed)
            except OSError as exc:
                log.error("docker logs store garbage collection failed: %s", exc)
                continue
            for container_id in collected:
                log.info("deleted stored logs of container %s (removed or idle past retention)", container_id[:12])

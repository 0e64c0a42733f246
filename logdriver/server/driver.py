"""The Driver: answers the plugin RPCs and owns every FIFO log.

One ``FifoLog`` per FIFO, keyed by the FIFO path (not the container: a stopped
container's ``docker logs`` opens a throw-away FIFO for the same ID, and a
live-restore re-attach opens a second one). One reader thread reads them all
(``reading/poller.py``); each FIFO log appends the raw frames to the ``docker logs``
store, rejoins split lines and hands them to the container's pipelines, which
``Deliveries`` opens and closes.

StopLogging only marks the FIFO as stopping and answers at once: the daemon
closes its write end after the reply, and the FIFO log drains to EOF. If EOF has
not come ``stop_timeout`` seconds later it gives up on the FIFO.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import trio

from logdriver._exceptions import LogDriverError
from logdriver._files import private_key
from logdriver.abc import ContainerContext, Sink
from logdriver.config.policy import NO_POLICY, Policy
from logdriver.config.settings import Settings
from logdriver.delivery.budget import RELEASE_AFTER, Budget, BudgetStatistics, release_free_memory
from logdriver.delivery.context import container_context
from logdriver.delivery.deliveries import Deliveries, DeliveryStatistics
from logdriver.delivery.pipeline_statistics import PipelineStatistics
from logdriver.delivery.totals import FifoStatistics, Totals
from logdriver.reading.deadlines import Deadlines
from logdriver.reading.fifo_log import FifoLog
from logdriver.reading.poller import FifoHub, open_fifo
from logdriver.reading.registry import FifoRegistry
from logdriver.server import rpc
from logdriver.server.live_policy import LivePolicy, PolicyStatistics
from logdriver.server.policy_switch import PolicySwitch
from logdriver.store.log_store import LogStore, StoreStatistics
from logdriver.store.readlogs import read_logs

log = logging.getLogger("logdriver.driver")


@dataclasses.dataclass(frozen=True, slots=True)
class PluginStatistics:
    fifos: FifoStatistics  # every FIFO this process has read, closed and open
    active_fifos: int
    fifo_failures: int  # FIFO logs whose reading ended on an unexpected error
    active_reads: int  # docker logs streams being served
    sinks: Mapping[str, PipelineStatistics]  # every installed sink, counters of all containers
    sink_events: Mapping[str, Mapping[str, int]]  # each sink's own counters (``Sink.counters``)
    deliveries: DeliveryStatistics
    store: StoreStatistics
    budgets: tuple[BudgetStatistics, ...]
    # Containers running now with a processing stage: (short id, name, their FIFO's counters).
    processing: tuple[tuple[str, str, FifoStatistics], ...] = ()
    policy: PolicyStatistics | None = None
    rule_containers: Mapping[str, int] = dataclasses.field(default_factory=dict)  # running, per rule in force


class Driver:
    """Implements ``_server.Handler``; run it with ``await nursery.start(driver.run)``."""

    def __init__(
        self,
        settings: Settings,
        sinks: Mapping[str, Sink],
        store: LogStore,
        registry: FifoRegistry,
        container_exists: Callable[[list[str]], Awaitable[set[str]]] | None = None,
    ) -> None:
        self.settings = settings
        self.sinks = dict(sinks)
        self.store = store
        self.registry = registry
        # EOF must follow StopLogging at once (the daemon closes right after our reply);
        # 30 s covers a daemon stalled under load.
        self.stop_timeout = 30.0
        self.follow_heartbeat = settings.follow_heartbeat
        # Asks the Docker API which of these containers are gone; None when there is no API.
        self.container_exists = container_exists
        self._fifos: dict[str, FifoLog] = {}
        self._infos: dict[str, dict[str, Any]] = {}  # each open FIFO's Info, for a new policy
        self._registry_flush_due = False
        self._redact_key_bytes: bytes | None = None
        self.active_reads = 0
        self.fifo_failures = 0  # FIFO logs that ended on an unexpected error (the plugin carried on)
        self._nursery: trio.Nursery | None = None
        self.totals = Totals()
        self.memory = Budget("memory", settings.memory_max_bytes)
        self.disk = Budget("disk", settings.disk_max_bytes)
        self.deliveries = Deliveries(
            settings.state_dir,
            self.sinks,
            self.totals,
            self.memory,
            self.disk,
            stopped_drain_max_time=settings.stopped_drain_max_time,
        )
        self.deadlines = Deadlines()  # when open multiline events are due
        self.policy_switch = PolicySwitch(
            settings,
            self.sinks,
            self._fifos,
            self._infos,
            self._context_of,
            self._stage,
            self.deliveries,
            lambda rules: self.live_policy.count_matches(rules),
        )
        self.live_policy = LivePolicy(
            settings.state_dir, self.policy_switch.check_rule, self.apply_policy, self.policy_switch.describe
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.deliveries.run)
            self.hub = FifoHub(self.settings.read_wait)
            await nursery.start(self.hub.run)
            await nursery.start(self.deadlines.run)
            self._nursery = nursery
            await self.live_policy.load()  # before any container resumes: they resume under it
            self._resume()
            self.deliveries.recover(self._context_of)
            nursery.start_soon(self._collect_garbage_forever)
            nursery.start_soon(self._release_memory_forever)
            await nursery.start(self.live_policy.run)
            task_status.started()
            await trio.sleep_forever()

    def _resume(self) -> None:
        """Reopen every FIFO a previous process was reading (the daemon never re-sends them)."""
        for path, info in self.registry.entries().items():
            try:
                rpc.check_info(info)
                try:
                    self._start(path, info)
                except LogDriverError as exc:  # under the policy: its logs go on, as before the restart
                    if not self.live_policy.policy.rules:
                        raise
                    log.error("%s; the container resumes without the policy", exc)
                    self._start(path, info, NO_POLICY)
                log.info("resumed FIFO %s for container %s", path, str(info.get("ContainerID", "?"))[:12])
            except Exception as exc:
                log.warning("dropping FIFO %s from the registry: %s", path, exc)
                self._unregister(path)

    # -- RPC handlers ----------------------------------------------------------

    async def start_logging(self, command: rpc.StartLogging) -> None:
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
        if self.registry.remove(path) and not self._registry_flush_due and self._nursery is not None:
            self._registry_flush_due = True
            self._nursery.start_soon(self._flush_registry)

    async def _flush_registry(self) -> None:
        """Write the registry's removals once a second at most, not once per container."""
        await trio.sleep(1.0)
        self._registry_flush_due = False
        try:
            self.registry.flush()
        except OSError as exc:
            log.error("cannot rewrite the FIFO registry: %s", exc)

    def _context_of(self, raw_info: Mapping[str, Any], policy: Policy | None = None) -> ContainerContext:
        policy = self.live_policy.policy if policy is None else policy
        return container_context(raw_info, self.settings.defaults, self.sinks, self.settings.environ, policy)

    def _redact_key(self) -> bytes:
        """The plugin's key for ``redact-mode=hash``: the operator's, or one kept in the state
        directory (read or made once, at the first container that starts)."""
        if self._redact_key_bytes is None:
            configured = self.settings.redact_key.encode()
            self._redact_key_bytes = configured or private_key(os.path.join(self.settings.state_dir, "redact.key"))
        return self._redact_key_bytes

    def _start(self, path: str, raw_info: dict[str, Any], policy: Policy | None = None) -> None:
        """Validate, open the FIFO and the sink pipelines, start reading; all or nothing."""
        assert self._nursery is not None, "Driver.run has not started"
        context = self._context_of(raw_info, policy)
        fd, _ = open_fifo(path, self.settings.pipe_size)
        try:
            pipelines = self.deliveries.open(path, context, raw_info)
        except BaseException:
            os.close(fd)
            raise
        try:
            memory = self.memory.share(context.info.container_id)  # with its pipelines' queues
            stage = self._stage(context)
            fifo = FifoLog(path, context, fd, pipelines, self.store, memory, self._closed, self.deadlines, stage)
            fifo.start(self.hub, self._nursery)
        except BaseException:
            os.close(fd)
            self.deliveries.abandon(pipelines)
            raise
        self._fifos[path] = fifo
        self._infos[path] = raw_info
        self.live_policy.count_matches(context.rules)

    def _stage(self, context: ContainerContext) -> Any:
        processing = context.options.processing
        if processing is None:
            return None
        return processing.stage(self._redact_key() if processing.redact_mode == "hash" else b"")

    async def apply_policy(self, policy: Policy) -> None:
        """Switch every running container to ``policy``, or none (``PolicySwitch``)."""
        await self.policy_switch.apply(policy)

    async def stop_logging(self, command: rpc.StopLogging) -> None:
        fifo = self._fifos.get(command.file)
        if fifo is not None and fifo.request_stop():
            self.hub.ending(fifo.key)  # EOF follows at once: handle it now, not after the reader's pause
            assert self._nursery is not None
            self._nursery.start_soon(self._stop_deadline, fifo)

    async def read_logs(self, command: rpc.ReadLogs) -> AsyncGenerator[bytes, None]:
        container_id = str(command.info.get("ContainerID", ""))
        for fifo in list(self._fifos.values()):
            if fifo.context.info.container_id == container_id:
                fifo.catch_up()  # the store then has every line the daemon wrote so far
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

    # -- the end of a FIFO -------------------------------------------------------

    def _closed(self, fifo: FifoLog, unregister: bool, shutting_down: bool) -> None:
        """A FIFO ended: its pipelines deliver what they hold, however long a destination is down
        (in a plugin shutdown, for their flush-timeout)."""
        self._fifos.pop(fifo.path, None)
        self._infos.pop(fifo.path, None)
        self.live_policy.containers_changed()
        self.deliveries.release(fifo.pipelines, shutting_down=shutting_down)
        self.totals.fold_fifo(fifo.statistics())
        if fifo.failed:
            self.fifo_failures += 1
        if unregister:
            self._unregister(fifo.path)

    async def _stop_deadline(self, fifo: FifoLog) -> None:
        with trio.move_on_after(self.stop_timeout):
            await fifo.closed.wait()
            return
        log.warning("no EOF on %s %.0f s after StopLogging; closing it", fifo.path, self.stop_timeout)
        await fifo.close()

    async def shutdown(self) -> None:
        """Stop reading every FIFO (they stay registered) and let the sinks flush.

        Each sink gets its flush-timeout; the caller bounds the whole with its grace.
        """
        for fifo in list(self._fifos.values()):
            await fifo.close(shutting_down=True)
        try:
            self.registry.flush()
        except OSError as exc:
            log.error("cannot rewrite the FIFO registry: %s", exc)
        await self.deliveries.shutdown(trio.current_time())

    # -- statistics (for metrics and health) -------------------------------------

    def statistics(self) -> PluginStatistics:
        """Everything ``/metrics`` and ``/health`` show: each part's own ``statistics()`` record."""
        fifos = dataclasses.replace(self.totals.fifos)
        processing = []
        for fifo in self._fifos.values():
            live = fifo.statistics()
            fifos.add(live)
            if fifo.processes:
                info = fifo.context.info
                processing.append((info.short_id, info.name.removeprefix("/"), live))
        deliveries = self.deliveries.statistics(trio.current_time())
        sinks = {
            name: deliveries.sinks.get(name, PipelineStatistics()) for name in sorted({*self.sinks, *deliveries.sinks})
        }
        return PluginStatistics(
            fifos=fifos,
            active_fifos=len(self._fifos),
            fifo_failures=self.fifo_failures,
            active_reads=self.active_reads,
            sinks=sinks,
            sink_events={name: dict(sink.counters()) for name, sink in sorted(self.sinks.items())},
            deliveries=deliveries,
            store=self.store.statistics(),
            budgets=(self.memory.statistics(), self.disk.statistics()),
            processing=tuple(processing),
            policy=self.live_policy.statistics(),
            rule_containers=self._rule_containers(),
        )

    def _rule_containers(self) -> dict[str, int]:
        """Running containers per rule in force (zeros too): one pass over the FIFOs."""
        counts = dict.fromkeys(self.live_policy.policy.rule_names(), 0)
        for fifo in self._fifos.values():
            for rule in fifo.context.rules:
                if rule in counts:
                    counts[rule] += 1
        return counts

    # -- housekeeping ----------------------------------------------------------

    async def _release_memory_forever(self) -> None:
        """After a burst, give the memory queues freed back to the system (every 30 s at most)."""
        while True:
            await trio.sleep(30)
            if self.memory.take_recent_peak() - self.memory.used >= RELEASE_AFTER:
                release_free_memory()

    async def _collect_garbage_forever(self) -> None:
        interval = self.settings.gc_interval
        if not math.isfinite(interval) or interval <= 0:
            return
        while True:
            await trio.sleep(interval)
            removed = None
            if self.container_exists is not None:
                try:
                    # A container with an open FIFO exists: ask only about the others.
                    logging_now = {fifo.context.info.container_id for fifo in self._fifos.values()}
                    removed = await self.container_exists(
                        [cid for cid in self.store.container_ids() if cid not in logging_now]
                    )
                except Exception as exc:
                    log.debug("docker API not usable for log garbage collection: %s", exc)
            try:
                collected = self.store.collect_garbage(time.time(), self.settings.store_retention, removed)
            except OSError as exc:
                log.error("docker logs store garbage collection failed: %s", exc)
                continue
            for container_id in collected:
                log.info("deleted stored logs of container %s (removed or idle past retention)", container_id[:12])

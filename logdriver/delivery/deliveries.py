"""Every live sink pipeline, whether its FIFO is still open or already closed.

A container's lines belong to their destination, not to the container's
lifetime: when a FIFO reaches EOF its pipelines stop taking input but keep
delivering what they hold, through outages, until it is delivered, or
``retry-max-time``, the memory or disk budget, or the dead letters take it
(all counted). So a batch job that exits while Fluentd restarts loses nothing.

Disk spools outlive the process too. Each spool keeps the container's Info
beside its records (``info.json``, mode 0600: it holds the container's
environment and secret log-opts), so a restarted plugin drains the spools of
containers that stopped, or were removed, before it came back, and deletes
each spool once it is delivered. A spool is keyed by sink, container and FIFO,
so a container restarting while its previous run still drains gets a spool
of its own.

Only a plugin shutdown cuts delivery short: each pipeline then gets its
``flush-timeout`` (within the shutdown grace); memory queues count what is
left as dropped, and disk spools keep it for the next start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import shutil
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

import orjson
import trio

from logdriver._exceptions import LogDriverError, is_native_panic
from logdriver._files import makedirs_private, write_private
from logdriver.abc import ContainerContext, Sink
from logdriver.config.pipeline_options import PipelineOptions
from logdriver.delivery.budget import Budget
from logdriver.delivery.clients import Clients, ClientStatistics, close_client
from logdriver.delivery.dead_letters import DeadLetters
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.pipeline_statistics import PipelineStatistics
from logdriver.delivery.sender import Sender
from logdriver.delivery.totals import Totals

log = logging.getLogger("logdriver.delivery")

_INFO = "info.json"


def delivery_key(options: PipelineOptions) -> Hashable:
    """The options pipelines must agree on to share a destination's requests."""
    return (options.batch_max_entries, options.batch_max_bytes, options.batch_max_wait, options.retry)


def spool_key(container_id: str, fifo_path: str) -> str:
    """``<container id>.<hash of the FIFO path>``: safe as a file name whatever the path holds."""
    return f"{container_id}.{hashlib.sha256(fifo_path.encode()).hexdigest()[:16]}"


class Deliveries:
    """Creates, runs and accounts for every pipeline; run with ``await nursery.start(deliveries.run)``."""

    def __init__(
        self,
        state_dir: str,
        sinks: Mapping[str, Sink],
        totals: Totals,
        memory: Budget,
        disk: Budget,
        stopped_drain_max_time: float = math.inf,
    ) -> None:
        self.sinks = sinks
        self.stopped_drain_max_time = stopped_drain_max_time
        self.totals = totals
        self.memory = memory
        self.disk = disk
        self.spool_root = os.path.join(state_dir, "spool")
        # buffer=hybrid's overflow: never carried over a restart (spill_queue.py).
        self.spill_root = os.path.join(state_dir, "spill")
        shutil.rmtree(self.spill_root, ignore_errors=True)
        self._dead_letter_dir = os.path.join(state_dir, "deadletter")
        self.dead_letters: dict[str, DeadLetters] = {}
        self.live: set[SinkPipeline] = set()
        self.senders: dict[Hashable, Sender] = {}
        self.clients = Clients()
        self._destinations: dict[SinkPipeline, Hashable] = {}
        self.failures = 0  # pipelines that ended on an unexpected error
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # -- creating --------------------------------------------------------------

    def open(
        self,
        fifo_path: str,
        context: ContainerContext,
        raw_info: Mapping[str, Any],
        names: Iterable[str] | None = None,
    ) -> dict[str, SinkPipeline]:
        """One started pipeline per sink of the container (or per sink in ``names``); all or
        none (a failure closes the rest). ``fifo_path`` keys their spools: a policy's new
        pipelines for a running FIFO give it a suffix, so that they never share one."""
        pipelines: dict[str, SinkPipeline] = {}
        try:
            for name in context.options.sinks if names is None else names:
                pipelines[name] = self._open_one(name, fifo_path, context, raw_info)
        except BaseException:
            self.abandon(pipelines)
            raise
        return pipelines

    def _open_one(
        self, name: str, fifo_path: str, context: ContainerContext, raw_info: Mapping[str, Any]
    ) -> SinkPipeline:
        assert self._nursery is not None, "Deliveries.run has not started"
        options = context.options.pipelines[name]
        spool_dir = os.path.join(self.spool_root, name, spool_key(context.info.container_id, fifo_path))
        sink = self.sinks[name]
        try:
            destination = sink.destination(context)
            hash(destination)
        except LogDriverError:
            raise
        except Exception as exc:  # a sink's bug: this container ships alone
            log.exception("sink %s: unusable destination for %s; it gets its own", name, context.info.short_id)
            destination = ("own", context.info.container_id, id(exc))
        client = self._client(name, destination, context)
        try:
            stream = sink.open_stream(context, client)
        except LogDriverError:
            self._release(name, destination)
            raise
        except Exception as exc:
            # A sink's bug or an unforeseen setup failure: this container's start fails, with the
            # type only (a message might quote a secret), and the traceback goes to the log.
            self._release(name, destination)
            log.exception("sink %s cannot start for container %s", name, context.info.short_id)
            raise LogDriverError(f"logdriver: sink {name} cannot start: {type(exc).__name__}") from exc
        if options.buffer == "disk":
            try:
                makedirs_private(spool_dir)
                write_private(os.path.join(spool_dir, _INFO), orjson.dumps({"fifo": fifo_path, "info": raw_info}))
            except OSError as exc:
                log.error("sink %s: cannot create spool %s (%s); buffering in memory", name, spool_dir, exc.strerror)
                options = dataclasses.replace(options, buffer="memory")
        spill_dir = os.path.join(self.spill_root, name, spool_key(context.info.container_id, fifo_path))
        try:
            pipeline = self._pipeline(name, context, options, stream, spool_dir, spill_dir)
        except BaseException:  # a bug, or a spool it cannot fall back from: the client is not kept for it
            self._release(name, destination)
            raise
        self._destinations[pipeline] = destination
        self._attach(pipeline, destination)
        return pipeline

    def _client(self, name: str, destination: Hashable, context: ContainerContext) -> Any:
        """The destination's client, from the one registry (``clients.py``)."""
        try:
            return self.clients.acquire(self.sinks[name], destination)
        except LogDriverError:
            raise
        except Exception as exc:  # as open_stream's: the type only, the traceback to the log
            log.exception("sink %s cannot open a client for container %s", name, context.info.short_id)
            raise LogDriverError(f"logdriver: sink {name} cannot start: {type(exc).__name__}") from exc

    def _release(self, name: str, destination: Hashable) -> None:
        """One user of the destination's client fewer; the last one closes it, off this call."""
        client = self.clients.release(self.sinks[name], destination)
        if client is not None and self._nursery is not None:
            self._nursery.start_soon(close_client, client)

    def _attach(self, pipeline: SinkPipeline, destination: Hashable) -> None:
        """Hand the pipeline to its destination's worker, starting one for a new destination."""
        assert self._nursery is not None, "Deliveries.run has not started"
        key = (pipeline.sink, destination, delivery_key(pipeline.options))
        sender = self.senders.get(key)
        if sender is None:
            sender = Sender(pipeline.sink, pipeline.options, self.sinks[pipeline.sink].send_together)
            self.senders[key] = sender
            self._nursery.start_soon(self._run, key, sender)
        sender.attach(pipeline)

    def _pipeline(
        self, name: str, context: ContainerContext, options: Any, stream: Any, spool_dir: str, spill_dir: str
    ) -> SinkPipeline:
        try:
            pipeline = SinkPipeline(
                name,
                context.info.container_id,
                stream,
                options,
                self.dead_letters.setdefault(name, DeadLetters(self._dead_letter_dir, name, budget=self.disk)),
                spool_dir=spool_dir,
                spill_dir=spill_dir,
                memory=self.memory.share(context.info.container_id),
                disk=self.disk.share(context.info.container_id),
                on_finish=self._finished,
            )
        except OSError as exc:  # an unreadable spool, no descriptors left
            log.error("sink %s: cannot open spool %s (%s); buffering in memory", name, spool_dir, exc.strerror)
            options = dataclasses.replace(options, buffer="memory")
            pipeline = SinkPipeline(
                name,
                context.info.container_id,
                stream,
                options,
                self.dead_letters[name],
                memory=self.memory.share(context.info.container_id),
                disk=self.disk.share(context.info.container_id),
                on_finish=self._finished,
            )
        self.live.add(pipeline)
        return pipeline

    # -- running ---------------------------------------------------------------

    async def _run(self, key: Hashable, sender: Sender) -> None:
        try:
            await sender.run()
        except BaseException as exc:
            if not isinstance(exc, Exception) and not is_native_panic(exc):
                raise
            self.failures += 1
            log.exception("sink %s: a sender failed; its containers' queued lines are lost", sender.sink)
        finally:
            # No checkpoint since the worker saw its last pipeline go: nothing attached since.
            del self.senders[key]
            self.totals.fold_sender(sender.statistics())

    def _finished(self, pipeline: SinkPipeline) -> None:
        self.live.discard(pipeline)
        destination = self._destinations.pop(pipeline, None)
        if destination is not None:
            self._release(pipeline.sink, destination)
        self.totals.fold_pipeline(pipeline)
        stats = pipeline.counters
        kept = pipeline.queue.undelivered
        if pipeline.spool_dir is not None and not kept and pipeline.closed_cleanly:
            shutil.rmtree(pipeline.spool_dir, ignore_errors=True)
        log.info(
            "sink %s for %s finished: %d in, %d delivered, %d dropped, %d dead-lettered, %d spilled%s",
            pipeline.sink,
            pipeline.container_id[:12],
            stats.lines_in,
            stats.lines_out,
            stats.dropped,
            stats.dead_lettered,
            stats.spilled,
            f", {kept} kept in the disk spool" if kept else "",
        )

    # -- closing: the only place the plugin closes pipelines ---------------------

    def release(self, pipelines: Mapping[str, SinkPipeline], *, shutting_down: bool = False) -> None:
        """The FIFO ended: no more input; deliver everything queued, however long it takes
        to a plugin-wide destination, within ``stopped_drain_max_time`` to one the container's
        log-opts chose (what it holds, a producer, a connection, is not a stopped container's
        to keep for good); in a plugin shutdown, within each pipeline's flush-timeout."""
        now = trio.current_time()
        for pipeline in pipelines.values():
            if shutting_down:
                pipeline.close(now + pipeline.options.flush_timeout)
            else:
                # Draining as ever (batches fill, requests are shared); only a retry past the
                # give-up time stops a pipeline to a destination its container chose.
                pipeline.close(math.inf)
                if pipeline.options.container_destination:
                    pipeline.give_up_at = now + self.stopped_drain_max_time

    def abandon(self, pipelines: Mapping[str, SinkPipeline]) -> None:
        """A start that failed after its pipelines opened: stop them now."""
        for pipeline in pipelines.values():
            pipeline.close(deadline=0.0)

    async def shutdown(self, now: float) -> None:
        """Plugin shutdown: every pipeline gets its flush-timeout, then stops (the caller bounds the wait)."""
        for pipeline in list(self.live):
            pipeline.close(deadline=now + pipeline.options.flush_timeout)
        for pipeline in list(self.live):
            await pipeline.finished()
        await self.clients.aclose_all()

    # -- spools left by stopped containers -------------------------------------

    def spools(self) -> Iterator[tuple[str, str]]:
        """(sink, spool directory) for every spool on disk."""
        for sink in sorted(os.listdir(self.spool_root)) if os.path.isdir(self.spool_root) else ():
            root = os.path.join(self.spool_root, sink)
            if os.path.isdir(root):
                for name in sorted(os.listdir(root)):
                    yield sink, os.path.join(root, name)

    def recover(self, context_of: Callable[[Mapping[str, Any]], ContainerContext]) -> None:
        """Drain every spool no open pipeline uses (its FIFO is gone): deliver, then delete."""
        in_use = {p.spool_dir for p in self.live if p.spool_dir is not None}
        for sink, directory in self.spools():
            if directory in in_use:
                continue
            try:
                with open(os.path.join(directory, _INFO), "rb") as handle:
                    saved = orjson.loads(handle.read())
                context = context_of(saved["info"])
                if sink not in self.sinks or sink not in context.options.pipelines:
                    raise LogDriverError(f"sink {sink} is not configured any more")
                fifo = str(saved["fifo"])
            except (OSError, ValueError, KeyError, TypeError, LogDriverError) as exc:
                log.error("spool %s cannot be drained (%s); left on disk", directory, exc)
                continue
            if os.path.join(self.spool_root, sink, spool_key(context.info.container_id, fifo)) != directory:
                log.error("spool %s does not match its info.json; left on disk", directory)
                continue
            options = dataclasses.replace(context.options.pipelines[sink], buffer="disk")
            context = dataclasses.replace(
                context, options=dataclasses.replace(context.options, pipelines={sink: options}, sinks=(sink,))
            )
            pipelines = self.open(fifo, context, saved["info"])
            log.info("draining the disk spool of stopped container %s to %s", context.info.short_id, sink)
            self.release(pipelines)

    # -- statistics ------------------------------------------------------------

    def statistics(self, now: float) -> DeliveryStatistics:
        """Per sink: counters over every pipeline and sender, finished and live, and the live gauges."""
        sinks = self.totals.sink_statistics()
        for pipeline in self.live:
            sinks.setdefault(pipeline.sink, PipelineStatistics()).add(pipeline.statistics(now))
        for sender in self.senders.values():
            snap = sinks.setdefault(sender.sink, PipelineStatistics())
            record = sender.statistics()
            snap.requests += record.requests
            snap.request_lines += record.request_lines
        return DeliveryStatistics(
            sinks=sinks,
            draining=sum(snap.draining for snap in sinks.values()),
            failures=self.failures,
            senders=len(self.senders),
            dead_letters_lost={name: dead.lost for name, dead in sorted(self.dead_letters.items())},
            clients=self.clients.statistics(),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryStatistics:
    sinks: Mapping[str, PipelineStatistics]  # per sink: counters of every pipeline, gauges of the live ones
    draining: int  # pipelines whose FIFO ended and that still deliver
    failures: int  # senders that ended on an unexpected error
    senders: int
    dead_letters_lost: Mapping[str, int]  # per sink: rejected lines the dead-letter file could not take
    clients: ClientStatistics  # destination clients open per sink

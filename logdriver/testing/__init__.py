"""For sink authors: run a sink as the plugin does, and check it against the shared contract.

The harness (no private imports needed):

- ``context_for(sink, config)``: the ``ContainerContext`` StartLogging would build for a
  container with these log-opts (every option validated, the tag rendered);
- ``open_stream(sink, config)``: that container's stream, on its destination's client
  (streams of equal destinations share one, as in the plugin; ``close_stream(stream)``
  closes the stream and its client with its last user, ``close_clients(sink)`` all of them);
- ``open_pipeline(sink, config, state_dir=...)``: the real pipeline (queue, batching,
  retries, dead letters) in front of that stream, and ``running(pipeline)`` to run it;
- ``running_together(sink, pipelines)``: several containers' pipelines on one shared
  sender, as the plugin runs streams with equal ``destination``;
- ``sample_records(count)``: lines to send;
- ``encode_entry`` and ``encode_frame``: ``LogEntry`` frames as dockerd writes them to a FIFO.

The conformance suite is ``SinkConformance``: subclass it in a test module and provide
two pytest fixtures, ``sink`` (the ``Sink``) and ``peer`` (a ``Peer``: a
real server, or directory, the sink delivers to). It checks what every sink promises:
a verdict for every line, outage and recovery without loss, flush on close, options
validated with the option named, secrets never in logs or errors, counters exported.
The suite's tests are ``async`` (run them with pytest-trio's ``trio_mode``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

from logdriver._exceptions import ConfigError, LogDriverError
from logdriver._framing import encode_frame
from logdriver._native import LogBatch, Stage
from logdriver._records import LogRecord, batch_of, records_of
from logdriver.abc import ContainerContext, Sink, SinkStream
from logdriver.config.options import parse_log_opts, plugin_defaults
from logdriver.config.processing import MARKER_SOURCE
from logdriver.delivery.clients import Clients, close_client
from logdriver.delivery.context import container_context
from logdriver.delivery.dead_letters import DeadLetters
from logdriver.delivery.pipeline import SinkPipeline
from logdriver.delivery.sender import run_alone
from logdriver.testing.entries import encode_entry

__all__ = [
    "CONTAINER_ID",
    "Peer",
    "SinkConformance",
    "close_clients",
    "close_stream",
    "context_for",
    "open_clients",
    "open_pipeline",
    "open_stream",
    "running",
    "running_together",
    "sample_records",
    "stage_for",
    "encode_entry",
    "encode_frame",
]

CONTAINER_ID = "0123456789ab" + "cd" * 26
T0 = 1_764_340_000_123_456_789  # 2025-11-28, nanoseconds


def stage_for(log_opts: Mapping[str, str]) -> Stage:
    """The processing stage ``docker run`` with these log-opts gives a container."""
    made = parse_log_opts(log_opts, plugin_defaults({})).processing
    if made is None:
        raise ValueError(f"{dict(log_opts)} asks for no processing")
    return made.stage()


def context_for(
    sink: Sink,
    config: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> ContainerContext:
    """What StartLogging builds for a container that logs to ``sink`` with ``config`` as log-opts.

    ``environ`` holds ``LOGDRIVER_*`` plugin settings (where secrets belong); ``info``
    overrides fields of the daemon's Info (``ContainerName``, ``ContainerLabels``...).
    """
    environ = dict(environ or {})
    raw = {
        "ContainerID": CONTAINER_ID,
        "ContainerName": "/web",
        "ContainerImageName": "busybox",
        **(info or {}),
        "Config": {"sinks": sink.name, **(config or {})},
    }
    return container_context(raw, plugin_defaults(environ), {sink.name: sink}, environ)


def open_stream(
    sink: Sink,
    config: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> SinkStream:
    context = context_for(sink, config, environ=environ, info=info)
    stream = sink.open_stream(context, _client(sink, context))
    _HELD[stream] = (sink, sink.destination(context))
    return stream


async def close_stream(stream: SinkStream) -> None:
    """Close a stream ``open_stream`` gave, and its client if no other stream uses it."""
    await stream.aclose()
    await _release(stream)


# The clients streams opened here use, one registry per sink object, as the plugin keeps
# one for all (``close_clients`` ends a test's).
_CLIENTS: weakref.WeakKeyDictionary[Sink, Clients] = weakref.WeakKeyDictionary()


# The client each stream or pipeline opened here holds: ``close_stream`` and ``running``
# give it back, and the last user closes it, as in the plugin.
_HELD: weakref.WeakKeyDictionary[SinkStream | SinkPipeline, tuple[Sink, Hashable]] = weakref.WeakKeyDictionary()


def _client(sink: Sink, context: ContainerContext) -> Any:
    return _CLIENTS.setdefault(sink, Clients()).acquire(sink, sink.destination(context))


async def _release(user: SinkStream | SinkPipeline) -> None:
    held = _HELD.pop(user, None)
    clients = _CLIENTS.get(held[0]) if held is not None else None
    if held is not None and clients is not None:
        client = clients.release(*held)
        if client is not None:
            await close_client(client)


async def close_clients(sink: Sink) -> None:
    """Close every client the harness opened for ``sink``'s streams and pipelines."""
    clients = _CLIENTS.pop(sink, None)
    if clients is not None:
        await clients.aclose_all()


def open_clients(sink: Sink) -> int:
    """How many clients the harness holds open for ``sink``."""
    clients = _CLIENTS.get(sink)
    return sum(clients.statistics().open.values()) if clients is not None else 0


def open_pipeline(
    sink: Sink,
    config: Mapping[str, str] | None = None,
    *,
    state_dir: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> SinkPipeline:
    """The plugin's pipeline for one container and ``sink``; pipeline log-opts (``overflow``,
    ``batch-max-wait``, ``retry-*``, ``buffer=disk``...) go in ``config`` like the sink's own,
    and ``info`` overrides fields of the daemon's Info (another ``ContainerID``...)."""
    context = context_for(sink, config, environ=environ, info=info)
    options = context.options.pipelines[sink.name]
    pipeline = SinkPipeline(
        sink.name,
        context.info.container_id,
        sink.open_stream(context, _client(sink, context)),
        options,
        DeadLetters(os.path.join(state_dir, "deadletter"), sink.name),
        spool_dir=os.path.join(state_dir, "spool", sink.name, context.info.container_id),
        spill_dir=os.path.join(state_dir, "spill", sink.name, context.info.container_id),
    )
    _HELD[pipeline] = (sink, sink.destination(context))
    return pipeline


@asynccontextmanager
async def running(pipeline: SinkPipeline, flush_timeout: float = 60.0) -> AsyncIterator[SinkPipeline]:
    """Run ``pipeline`` for the block; on the way out, deliver what is queued (within ``flush_timeout``)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(run_alone, pipeline)
        try:
            yield pipeline
        finally:
            pipeline.close(trio.current_time() + flush_timeout)
            await pipeline.finished()
            await _release(pipeline)


@asynccontextmanager
async def running_together(
    sink: Sink, pipelines: Sequence[SinkPipeline], flush_timeout: float = 60.0
) -> AsyncIterator[Sequence[SinkPipeline]]:
    """Run ``pipelines`` on one shared sender, as the plugin does for streams
    whose ``destination`` is equal: shared requests through ``sink.send_together``."""
    from logdriver.delivery.sender import Sender  # the plugin's own worker

    sender = Sender(sink.name, pipelines[0].options, sink.send_together)
    for pipeline in pipelines:
        sender.attach(pipeline)
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        try:
            yield pipelines
        finally:
            for pipeline in pipelines:
                pipeline.close(trio.current_time() + flush_timeout)
            for pipeline in pipelines:
                await pipeline.finished()
                await _release(pipeline)


def sample_records(count: int, start: int = 0) -> list[LogRecord]:
    """``count`` lines, stdout and stderr mixed, with distinct text and rising times."""
    return [
        LogRecord("stderr" if i % 4 == 3 else "stdout", T0 + i * 1_000_003, f"conformance line {i}".encode())
        for i in range(start, start + count)
    ]


class Peer(Protocol):
    """Where a sink under test delivers; its methods may block (the suite calls them in a thread)."""

    @property
    def config(self) -> Mapping[str, str]:
        """Log-opts that point the sink here."""

    @property
    def environ(self) -> Mapping[str, str]:
        """``LOGDRIVER_*`` settings for the sink (credentials); may be empty."""

    @property
    def secrets(self) -> Sequence[str]:
        """Values that must never appear in a log line or an error."""

    @property
    def elsewhere(self) -> tuple[str, str] | None:
        """A destination log-opt and a value naming another destination (None: the sink has none)."""

    @property
    def bad_option(self) -> tuple[str, str]:
        """One of the sink's own log-opts and a value it must refuse."""

    @property
    def exactly_once(self) -> bool:
        """Whether an outage may cause duplicates (False: at-least-once, e.g. an unacked resend)."""

    def received(self, count: int, timeout: float) -> list[bytes]:
        """The message lines the destination holds, once it holds ``count`` (or ``timeout`` passed)."""

    def stop(self) -> None:
        """Make the destination unreachable (an outage)."""

    def start(self) -> None:
        """Bring it back."""


class SinkConformance:
    """The contract every sink keeps. Subclass with ``sink`` and ``peer`` fixtures."""

    LINES = 300

    async def test_every_line_arrives_and_is_counted(self, sink: Sink, peer: Peer, tmp_path: Any) -> None:
        records = sample_records(self.LINES)
        pipeline = open_pipeline(sink, peer.config, state_dir=tmp_path, environ=peer.environ)
        async with running(pipeline):
            for start in range(0, self.LINES, 100):
                await pipeline.put(batch_of(records[start : start + 100]))
        stats = pipeline.counters
        assert (stats.lines_in, stats.lines_out, stats.dropped, stats.dead_lettered) == (
            self.LINES,
            self.LINES,
            0,
            0,
        )
        got = await trio.to_thread.run_sync(peer.received, self.LINES, 60.0)
        assert Counter(got) == Counter(r.line for r in records)

    OUTAGE_LINES = 10_000

    async def test_an_outage_mid_run_loses_nothing(self, sink: Sink, peer: Peer, tmp_path: Any) -> None:
        """The destination goes away for 5 s while lines flow; the pipeline blocks (as a container
        would wait), retries, and delivers every line; duplicates only where the sink says so."""
        total, per_put = self.OUTAGE_LINES, 100
        records = sample_records(total)
        config = {**peer.config, "overflow": "block", "block-timeout": "120s"}
        pipeline = open_pipeline(sink, config, state_dir=tmp_path, environ=peer.environ)
        async with running(pipeline, flush_timeout=120), trio.open_nursery() as nursery:

            async def outage() -> None:
                await trio.sleep(1)
                await trio.to_thread.run_sync(peer.stop)
                await trio.sleep(5)
                await trio.to_thread.run_sync(peer.start)

            nursery.start_soon(outage)
            for start in range(0, total, per_put):
                await pipeline.put(batch_of(records[start : start + per_put]))
                await trio.sleep(0.02)
        assert (pipeline.counters.lines_out, pipeline.counters.dropped) == (total, 0)
        assert pipeline.counters.retried > 0  # the outage happened mid-run
        got = Counter(await trio.to_thread.run_sync(peer.received, total, 60.0))
        assert set(got) == {r.line for r in records}
        if peer.exactly_once:
            assert sum(got.values()) == total

    async def test_multiline_events_arrive_whole(self, sink: Sink, peer: Peer, tmp_path: Any) -> None:
        """Events the processing stage joined (lines with newlines, a marker) arrive with every
        line in place; a format that holds one line per message gives them back as lines."""
        trace = [b"java.lang.IllegalStateException: boom", *(b"\tat T.f%d(T.java:%d)" % (n, n) for n in range(30))]
        records = [
            LogRecord("stdout" if n % 2 else "stderr", T0 + n, line)
            for n, line in enumerate([b"before", *trace, b"between", *trace, b"after"])
        ]
        stage = stage_for({"multiline": "java"})
        events = LogBatch.concat([stage.process(batch_of(records), 0.0), stage.finish(0.0)])
        assert len(events) < len(records)  # something was joined
        pipeline = open_pipeline(sink, peer.config, state_dir=tmp_path, environ=peer.environ)
        async with running(pipeline):
            await pipeline.put(events)
        assert (pipeline.counters.lines_out, pipeline.counters.dropped) == (len(events), 0)
        got = await trio.to_thread.run_sync(peer.received, len(events), 60.0)
        assert Counter(line for message in got for line in message.split(b"\n")) == Counter(r.line for r in records)

    async def test_rate_limit_markers_arrive_with_the_lines_that_passed(
        self, sink: Sink, peer: Peer, tmp_path: Any
    ) -> None:
        """A rate limit's marker (a record of the plugin's own stream) is shipped and counted
        like a line; the sink renders its stream as it is (``MARKER_SOURCE``)."""
        stage = stage_for({"rate-limit": "10/s"})
        written = sample_records(40, start=20_000)
        processed = stage.process(batch_of(written), 0.0)
        records = records_of(processed)
        assert [r.source for r in records].count(MARKER_SOURCE) == 1
        pipeline = open_pipeline(sink, peer.config, state_dir=tmp_path, environ=peer.environ)
        async with running(pipeline):
            await pipeline.put(processed)
        assert (pipeline.counters.lines_out, pipeline.counters.dropped) == (len(records), 0)
        got = await trio.to_thread.run_sync(peer.received, len(records), 60.0)
        assert {r.line for r in records} <= set(got)
        dropped = sum(len(r.line) for r in written[10:])  # the burst of 10 passed
        assert f"logdriver: rate limit: 30 lines ({dropped:,} bytes) dropped in the last 1 s".encode() in got

    async def test_close_flushes_what_is_queued(self, sink: Sink, peer: Peer, tmp_path: Any) -> None:
        records = sample_records(50, start=10_000)
        config = {**peer.config, "batch-max-wait": "1h", "batch-max-entries": "100000"}
        pipeline = open_pipeline(sink, config, state_dir=tmp_path, environ=peer.environ)
        async with running(pipeline):
            await pipeline.put(batch_of(records))
            await trio.sleep(0.2)
            assert pipeline.counters.lines_out == 0  # still waiting for the batch to fill
        assert pipeline.counters.lines_out == len(records)
        got = await trio.to_thread.run_sync(peer.received, len(records), 60.0)
        assert {r.line for r in records} <= set(got)

    async def test_a_bad_option_fails_naming_it(self, sink: Sink, peer: Peer) -> None:
        import pytest  # only the suite needs it, not the plugin

        key, value = peer.bad_option
        with pytest.raises(ConfigError, match=re.escape(repr(key))):  # as StartLogging: options, then the stream
            open_stream(sink, {**peer.config, key: value}, environ=peer.environ)
        with pytest.raises(LogDriverError, match="no-such-option"):
            context_for(sink, {f"{sink.name}-no-such-option": "1"})

    async def test_secrets_never_reach_logs_or_errors(self, sink: Sink, peer: Peer, tmp_path: Any, caplog: Any) -> None:
        caplog.set_level(logging.DEBUG)
        errors: list[str] = []
        await trio.to_thread.run_sync(peer.stop)
        try:
            pipeline = open_pipeline(
                sink,
                {**peer.config, "retry-max-attempts": "2", "retry-initial": "10ms"},
                state_dir=tmp_path,
                environ=peer.environ,
            )
            async with running(pipeline, flush_timeout=30):
                await pipeline.put(batch_of(sample_records(10)))
            for option in sink.config.options():
                if option.secret:
                    try:
                        context_for(sink, {**peer.config, option.name: "\x00bad"}, environ=peer.environ)
                    except LogDriverError as exc:
                        errors.append(str(exc))
        finally:
            await trio.to_thread.run_sync(peer.start)
        text = caplog.text + "\n".join(errors)
        assert pipeline.counters.dead_lettered == 10  # gave up, with a reason
        for secret in peer.secrets:
            assert secret not in text

    async def test_credentials_go_only_to_the_plugin_wide_destination(self, sink: Sink, peer: Peer) -> None:
        """A container naming another destination in its log-opts gets none of the plugin-wide
        credentials; secrets are refused as log-opts (they show in docker inspect)."""
        import pytest  # only the suite needs it, not the plugin

        own = context_for(sink, peer.config, environ=peer.environ).sink_config(sink.name)
        bound = [option for option in sink.config.options() if option.bound]
        elsewhere = getattr(peer, "elsewhere", None)
        if elsewhere is not None:
            key, value = elsewhere
            chosen = context_for(sink, {**peer.config, key: value}, environ=peer.environ)
            for option in bound:  # the plugin-wide ones; a container's own log-opt stays its own
                if option.name not in peer.config:
                    assert chosen.sink_config(sink.name).get(option.name) in ("", None, False), option.name
            assert any(own.get(option.name) for option in bound), "the plugin-wide destination has them"
        for option in sink.config.options():
            if option.secret:
                with pytest.raises(ConfigError, match=re.escape(repr(option.name))):
                    context_for(sink, {option.name: "from-a-log-opt"})

    async def test_counters_are_named_integers(self, sink: Sink) -> None:
        counters = sink.counters()
        for name, value in counters.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
            assert isinstance(value, int)
            assert not math.isnan(value)

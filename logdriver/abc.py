"""The sink interface: what every sink (file, Fluentd, Elasticsearch, Kafka, OTLP, Loki) implements.

A ``Sink`` is one destination kind, created once per plugin process from the
plugin settings. For every container that lists it in ``sinks``, the plugin asks
where its lines go (``destination``), opens that destination's client when it is the
first container there (``open_client``; the plugin closes it with the last), and calls
``open_stream`` at StartLogging (none of these may block: no network there, StartLogging
delays ``docker start``); then it hands the stream batches of rejoined lines
(``logdriver.LogBatch``). The pipeline, not the sink, owns buffering and retries: a
stream answers each batch with a ``SendResult`` and never sleeps to retry.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from logdriver._native import LogBatch
from logdriver._records import ContainerInfo
from logdriver.config.options import ContainerOptions
from logdriver.config.registry import Config, SinkConfig
from logdriver.config.settings import Settings


@dataclass(frozen=True, slots=True)
class ContainerContext:
    """Everything a sink may use to label a container's records."""

    info: ContainerInfo
    options: ContainerOptions
    tag: str
    extras: Mapping[str, str]
    # Where each option the container's log-opts or the operator's policy set came from
    # ("log-opt", "rule <name> (enforce)"), and the policy rules that select the container.
    sources: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    given: Mapping[str, str] = field(default_factory=dict)  # the option texts, log-opts with the policy's layers

    def sink_config(self, sink: str) -> SinkConfig:
        """The config of the sink named ``sink`` (one of this container's sinks)."""
        return self.options.sink_configs[sink]

    def config(self, kind: type[Config]) -> Config:
        """This container's typed config of the sink whose ``Sink.config`` is ``kind``."""
        for config in self.options.sink_configs.values():
            if type(config) is kind:
                return config
        raise LookupError(f"no {kind.__name__} for this container: its sink is not in its sinks")

    def record_fields(self) -> dict[str, object]:
        """The container's part of logdriver's JSON record (the file sink's lines, Kafka's
        values): ``container_id``, ``container_name`` (without Docker's leading "/"),
        ``image``, and ``tag`` and ``attrs`` (the labels/env extras) when set."""
        fields: dict[str, object] = {
            "container_id": self.info.container_id,
            "container_name": self.info.name.removeprefix("/"),
            "image": self.info.image_name,
        }
        if self.tag:
            fields["tag"] = self.tag
        if self.extras:
            fields["attrs"] = dict(self.extras)
        return fields


@dataclass(frozen=True, slots=True)
class SendResult:
    """A stream's verdict on one batch.

    ``retry`` holds indexes to send again later (transient failure), no sooner than
    ``retry_after`` seconds when the destination asked for that (HTTP's Retry-After);
    ``rejected`` maps indexes to the reason they can never be delivered.
    Everything else in the batch counts as delivered.
    """

    retry: Sequence[int] = ()
    rejected: Mapping[int, str] = field(default_factory=dict)
    retry_after: float | None = None

    @classmethod
    def retry_all(cls, size: int, retry_after: float | None = None) -> SendResult:
        return cls(retry=range(size), retry_after=retry_after)


DELIVERED = SendResult()


class _OwnDestination:
    """A destination no other container shares (compared by identity)."""

    __slots__ = ("container_id",)

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id

    def __repr__(self) -> str:
        return f"<own destination of {self.container_id[:12]}>"


class SinkStream(abc.ABC):
    """One container's lines going to one sink."""

    @abc.abstractmethod
    async def send_batch(self, batch: LogBatch) -> SendResult:
        """Deliver the batch's lines in order; never raise for a destination failure.

        Indexes in the result refer to positions in ``batch``;
        ``logdriver.records_of(batch)`` gives the lines as ``LogRecord`` objects.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Flush and release; called once, after the last batch."""


class Sink(abc.ABC):
    """A destination kind, registered under the ``logdriver.sinks`` entry-point group."""

    name: ClassVar[str]
    # Pipeline option defaults for this kind of destination, e.g. {"overflow": "block"}
    # for a local file; see logdriver/config/pipeline_options.py for the names.
    pipeline_defaults: ClassVar[Mapping[str, str]] = {}
    # The log-opts this kind of sink owns, as the fields of its typed config (a frozen
    # dataclass declared with ``logdriver.config.option``), validated at StartLogging.
    config: ClassVar[type[SinkConfig]] = SinkConfig
    # A log-opt of this sink that selects it when a container names no ``sinks``: another
    # driver's users keep their log-opts (``loki-url``) and get this sink.
    selected_by: ClassVar[str | None] = None

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Sink:
        """Build from plugin-wide settings; raise ConfigError for bad ones."""

    def expand_log_opts(self, config: Mapping[str, str]) -> Mapping[str, str]:
        """A container's log-opts with what another driver's options of this sink mean in
        logdriver's own (the Loki driver's pipeline stages → processing steps), before they
        are validated; raise ``ConfigError`` for what it cannot take. By default, as given."""
        return config

    def destination(self, context: ContainerContext) -> Hashable:
        """Where this container's lines go: containers with equal destinations share one
        client, batches and requests (``send_together``). Say so when the address,
        credentials and target match; by default a container is a destination of its own."""
        return _OwnDestination(context.info.container_id)

    def open_client(self, destination: Hashable) -> Any:
        """The destination's client (a connection pool, a producer), or None for a sink
        that needs none. The plugin opens it when the first container of ``destination``
        starts and closes it (``aclose()``) when the last one's lines are delivered: no
        I/O here (it runs inside StartLogging); raise ``ConfigError`` for settings the
        client refuses."""
        return None

    @abc.abstractmethod
    def open_stream(self, context: ContainerContext, client: Any) -> SinkStream:
        """Start shipping one container through its destination's ``client`` (fast: called
        inside StartLogging)."""

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        """Send several containers' batches to their shared ``destination``; one verdict per part.

        The default sends them one after the other; a sink whose protocol can carry
        many containers in one request (a bulk body, one forward write) overrides it.
        """
        return [await stream.send_batch(batch) for stream, batch in parts]

    def counters(self) -> Mapping[str, int]:
        """Sink-specific event counts for the metrics endpoint (e.g. lines resent unacknowledged)."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release plugin-wide resources at shutdown."""

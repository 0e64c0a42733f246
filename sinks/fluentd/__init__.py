"""Fluentd sink: Fluent forward protocol v1 to Fluentd, Fluent Bit or any forward server.

A drop-in for Docker's ``fluentd`` driver: the same option names, tag and
record keys, so an existing Fluentd configuration keeps working. What differs
is what that driver cannot do: a dead server never blocks the container (the
pipeline buffers and drops by policy, counted), batches go out as
PackedForward (optionally gzip) with acks on by default (at-least-once), and
there are TLS, the shared-key handshake and several servers.

Counters (``logdriver_sink_events{sink="fluentd"}``): ``unacked_lines``
(lines written but never acknowledged, so resent: the only source of
duplicates), ``connects``, ``connect_failures``, ``failovers`` (batches a
server other than the first choice took).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from logdriver import LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import (
    SinkConfig,
    choice,
    client_tls_context,
    groups,
    int_between,
    option,
    parse_bool,
    parse_duration,
    parse_size,
    render_tag,
)

from ._connection import ConnectOptions
from ._forward import EntryEncoder, new_chunk_id, packed_forward
from ._route import ForwardRoute
from ._servers import Server, ServerChoice, parse_addresses

log = logging.getLogger("logdriver.sinks.fluentd")

__all__ = ["FluentdSink"]


def _entries(text: str) -> int:
    value = parse_size(text, binary=True)  # Docker parses it with RAMInBytes: "1m" is 1048576
    if not 0 < value <= 10_000_000:  # buffer-max-entries' bound
        raise ValueError(text)
    return value


_DURATION = "a duration such as 10s"
_BOOL = "true or false"


@dataclass(frozen=True, slots=True)
class FluentdConfig(SinkConfig):
    """The Fluentd sink's options for one container (its log-opts over ``LOGDRIVER_<NAME>`` defaults)."""

    address: tuple[Server, ...] | None = option(
        "fluentd-address",
        "",
        "tcp://host:port, tls://host:port, unix:///path or host:port, comma-separated",
        "servers; empty means tcp://127.0.0.1:24224",
        parse_addresses,
        destination=True,
    )
    balance: str = option(
        "fluentd-balance",
        "failover",
        "failover or weighted",
        "failover: the first healthy server takes all; weighted: share by ?weight=N",
        choice("failover", "weighted"),
    )
    recover_wait: float = option(
        "fluentd-recover-wait", "10s", _DURATION, "how long a failed server is skipped", parse_duration
    )
    request_ack: bool = option(
        "fluentd-request-ack", "true", _BOOL, "wait for the server's ack (at-least-once)", parse_bool
    )
    ack_timeout: float = option(
        "fluentd-ack-timeout", "30s", _DURATION, "resend a batch not acked by then", parse_duration
    )
    connect_timeout: float = option(
        "fluentd-connect-timeout", "5s", _DURATION, "connect plus handshake", parse_duration
    )
    write_timeout: float = option(
        "fluentd-write-timeout", "10s", _DURATION + "; 0s waits forever", "one batch write", parse_duration
    )
    sub_second_precision: bool = option(
        "fluentd-sub-second-precision", "true", _BOOL, "EventTime with nanoseconds, else whole seconds", parse_bool
    )
    compress: str = option(
        "fluentd-compress",
        "none",
        "none or gzip",
        "gzip sends CompressedPackedForward",
        choice("none", "gzip"),
    )
    shared_key: str = option(
        "fluentd-shared-key", "", "a string", "turns on the HELO/PING/PONG handshake (plugin-wide only)", secret=True
    )
    username: str = option(
        "fluentd-username", "", "a string", "handshake user (servers with user auth)", credential=True
    )
    password: str = option("fluentd-password", "", "a string", "handshake password (plugin-wide only)", secret=True)
    hostname: str = option("fluentd-hostname", "", "a host name", "our name in the handshake; empty means this host's")
    tls_ca: str = groups.tls_ca("fluentd")
    tls_cert: str = groups.tls_cert("fluentd")
    tls_key: str = groups.tls_key("fluentd")
    tls_server_name: str = groups.tls_server_name("fluentd")
    tls_verify: bool = groups.tls_verify("fluentd")
    async_: bool = option("fluentd-async", "false", _BOOL, "accepted; logdriver never blocks docker run", parse_bool)
    async_connect: bool = option(
        "fluentd-async-connect", "false", _BOOL, "accepted (Docker 28 removed it from its own driver)", parse_bool
    )
    async_reconnect_interval: float | None = option(
        "fluentd-async-reconnect-interval",
        "",
        _DURATION,
        "longest wait between reconnects",
        parse_duration,
        pipeline="retry-max-delay",
    )
    buffer_limit: int | None = option(
        "fluentd-buffer-limit",
        "",
        "a number of lines from 1 to 10000000 (1m = 1048576)",
        "lines buffered",
        _entries,
        pipeline="buffer-max-entries",
    )
    retry_wait: float | None = option(
        "fluentd-retry-wait", "", _DURATION, "first retry delay", parse_duration, pipeline="retry-initial"
    )
    max_retries: int | None = option(
        "fluentd-max-retries",
        "",
        "an integer from 0 to 4294967295",
        "retries before a batch is dead-lettered",
        int_between(0, 4_294_967_295),  # Docker's own bound
        pipeline="retry-max-attempts",
    )


# The options that make two containers' streams one destination (one route, shared requests).
_ROUTE_FIELDS = (
    "address",
    "balance",
    "recover_wait",
    "request_ack",
    "compress",
    "connect_timeout",
    "write_timeout",
    "ack_timeout",
    "shared_key",
    "username",
    "password",
    "hostname",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_server_name",
    "tls_verify",
)


class FluentdSink(Sink):
    name = "fluentd"
    config = FluentdConfig
    # A network destination: retry soon, and never hold the container (drop-newest, counted).
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"retry-initial": "200ms", "retry-max-delay": "1s"}

    def __init__(self) -> None:
        self.events = {"unacked_lines": 0, "connects": 0, "connect_failures": 0, "failovers": 0}

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        """One write of every container's message on the destination's connection, each acked."""
        streams = [cast(FluentdStream, stream) for stream, _ in parts]
        messages = [stream.message(batch) for stream, (_, batch) in zip(streams, parts, strict=True)]
        lines = sum(len(batch) for _, batch in parts)
        chunks = [chunk for _, chunk in messages if chunk]
        if await streams[0].route.send(b"".join(message for message, _ in messages), chunks, lines):
            return [DELIVERED] * len(parts)
        return [SendResult.retry_all(len(batch)) for _, batch in parts]

    @classmethod
    def from_settings(cls, settings: Settings) -> FluentdSink:
        return cls()

    def destination(self, context: ContainerContext) -> RouteSettings:
        """Everything a connection depends on, by value: containers that agree share a route
        and its connections (a container's pipeline outlives its exit by ``batch-max-wait``
        at least, so containers that start and exit one after another share the connection)."""
        config = context.config(FluentdConfig)
        servers = config.address or parse_addresses("")  # empty: tcp://127.0.0.1:24224
        if any(server.scheme == "tls" for server in servers):  # a bad file fails docker run, naming it
            client_tls_context(config.tls_ca, config.tls_cert, config.tls_key, config.tls_verify, prefix="fluentd-tls-")
        return RouteSettings(tuple(getattr(config, field) for field in _ROUTE_FIELDS))

    def open_client(self, destination: Hashable) -> ForwardRoute:
        assert isinstance(destination, RouteSettings)
        config = destination.fields
        servers = config["address"] or parse_addresses("")
        tls = None
        if any(server.scheme == "tls" for server in servers):
            tls = client_tls_context(
                config["tls_ca"], config["tls_cert"], config["tls_key"], config["tls_verify"], prefix="fluentd-tls-"
            )
        write_timeout = config["write_timeout"]
        connect = ConnectOptions(
            connect_timeout=config["connect_timeout"],
            write_timeout=write_timeout if write_timeout > 0 else float("inf"),
            ack_timeout=config["ack_timeout"],
            shared_key=config["shared_key"],
            username=config["username"],
            password=config["password"],
            hostname=config["hostname"] or socket.gethostname(),
            tls_context=tls,
            tls_server_name=config["tls_server_name"],
        )
        choice = ServerChoice(servers, config["balance"] == "weighted", config["recover_wait"])
        return ForwardRoute(destination, choice, connect, self.events)

    def open_stream(self, context: ContainerContext, client: ForwardRoute) -> SinkStream:
        return FluentdStream(context, context.config(FluentdConfig), client)

    def counters(self) -> Mapping[str, int]:
        return self.events


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """A route's options (``_ROUTE_FIELDS``) by value: the Fluentd sink's destination."""

    values: tuple[Any, ...]

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(_ROUTE_FIELDS, self.values, strict=True))


class FluentdStream(SinkStream):
    def __init__(self, context: ContainerContext, config: FluentdConfig, route: ForwardRoute) -> None:
        info = context.info
        self.tag = context.tag or render_tag("{{.ID}}", info)  # Docker's fluentd default tag
        self.container = info.short_id
        # container_name keeps its leading "/", as Docker sends it.
        self.encoder = EntryEncoder(info.container_id, info.name, context.extras, config.sub_second_precision)
        self.request_ack = config.request_ack
        self.compress = config.compress == "gzip"
        self.route = route

    def message(self, batch: LogBatch) -> tuple[bytes, str | None]:
        """This container's lines as one forward message, and its chunk id when acks are on."""
        chunk = new_chunk_id() if self.request_ack else None
        return packed_forward(self.tag, self.encoder.encode(batch), len(batch), chunk, self.compress), chunk

    async def send_batch(self, batch: LogBatch) -> SendResult:
        message, chunk = self.message(batch)
        if await self.route.send(message, [chunk] if chunk else [], len(batch)):
            return DELIVERED
        return SendResult.retry_all(len(batch))

    async def aclose(self) -> None:
        return None

"""Kafka sink: every line one message, through librdkafka (``confluent-kafka``).

One idempotent producer (``acks=all``) per cluster and settings, shared by every
container that ships there (``_producer.py``): a host with 200 containers holds
one set of broker connections, and a request carries every container's lines.
librdkafka rides through a broker loss or a leader election on its own (within
``kafka-message-timeout``) without duplicating a line; what it cannot deliver comes
back as per-line verdicts: retriable errors are retried by the pipeline (overflow
policy, spool), permanent ones (message too large, unknown topic, not authorized)
go to the dead letters with the broker's reason.

A message: the value is the file sink's JSON record (``kafka-format=json``) or the
line itself (``raw``); the key is ``kafka-key`` (by default the container ID, so a
container's lines stay in order in one partition); the timestamp is the line's
time; headers (by default with ``raw`` only, since a JSON record has the same fields)
carry ``container_id``, ``container_name``, ``image``, ``stream``, and ``tag`` and
the labels/env extras when set.

Secrets: the SASL password is read only from the plugin-wide
``LOGDRIVER_KAFKA_SASL_PASSWORD`` (a log-opt would show in ``docker inspect``).

Counters (``logdriver_sink_events{sink="kafka"}``): ``producers_opened`` (one per
cluster and settings while containers use it), ``broker_errors`` (producer-wide
errors: brokers down, authentication), ``producer_restarts`` (after a fatal error),
``stalled_requests`` (no report within the timeout: sent again), ``full_queue_waits``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import orjson
import trio
from confluent_kafka import KafkaException

from logdriver import MARKER_SOURCE, ConfigError, ContainerInfo, LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import (
    SinkConfig,
    Template,
    choice,
    client_tls_context,
    groups,
    int_between,
    option,
    parse_bool,
    parse_duration,
    size_between,
)

from ._producer import Outgoing, SharedProducer
from ._render import messages

log = logging.getLogger("logdriver.sinks.kafka")

__all__ = ["KafkaSink"]

_BOOL = "true or false"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
# librdkafka runs a thread and a connection per broker: one log-opt of 4,000 brokers made
# 5,024 threads and 10,044 descriptors. Bootstrap lists are short; the cluster names the rest.
MAX_BROKERS = 32
# Producers (one per cluster and settings) per plugin, each with its broker threads: a
# container asking for one more is refused at docker run, naming kafka-brokers.
MAX_PRODUCERS = 16


def parse_brokers(text: str) -> str:
    """``host:port[,host:port...]``, each port 1-65535; returned normalised (no spaces)."""
    brokers = [part.strip() for part in text.split(",") if part.strip()]
    if not brokers:
        raise ValueError("no broker")
    if len(brokers) > MAX_BROKERS:
        raise ValueError(f"{len(brokers)} brokers")
    if len(set(brokers)) != len(brokers):
        raise ValueError("a broker listed twice")
    for broker in brokers:
        host, sep, port = broker.rpartition(":")
        if not sep or not host or len(host) > 253 or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise ValueError(broker)
    return ",".join(brokers)


def _template(value: str) -> str:
    Template.parse(value)  # ValueError names what is wrong
    return value


def _milliseconds(text: str) -> int:
    value = round(parse_duration(text) * 1000)
    if not 0 < value <= 2**31 - 1:
        raise ValueError(text)
    return value


@dataclass(frozen=True, slots=True)
class KafkaConfig(SinkConfig):
    """The Kafka sink's options for one container (its log-opts over ``LOGDRIVER_<NAME>`` defaults)."""

    brokers: str = option(
        "kafka-brokers",
        "127.0.0.1:9092",
        f"host:port, comma-separated, at most {MAX_BROKERS}",
        "bootstrap brokers",
        parse_brokers,
        destination=True,
    )
    topic: str = option(
        "kafka-topic", "docker-logs", "a topic name with Docker tag variables, e.g. logs-{{.Name}}", "", _template
    )
    key: str = option(
        "kafka-key",
        "{{.FullID}}",
        "Docker tag variables; empty for none",
        "message key: the partition, so the order kept",
        _template,
    )
    format: str = option(
        "kafka-format", "json", "json or raw", "the JSON record or the line itself", choice("json", "raw")
    )
    headers: str = option(
        "kafka-headers",
        "auto",
        "auto, true or false",
        "container metadata in headers; auto: with raw only (a JSON record carries it)",
        choice("auto", "true", "false"),
    )
    compression: str = option(
        "kafka-compression",
        "lz4",
        "none, gzip, lz4 or zstd",
        "batch compression",
        choice("none", "gzip", "lz4", "zstd"),
    )
    acks: str = option("kafka-acks", "all", "all, 1 or 0", "replicas that must have a line", choice("all", "1", "0"))
    idempotence: bool = option(
        "kafka-idempotence", "true", _BOOL, "no duplicates from librdkafka's retries", parse_bool
    )
    max_in_flight: int = option(
        "kafka-max-in-flight", "5", "1 to 5 with idempotence", "requests in flight per broker", int_between(1, 1000)
    )
    message_max_bytes: int = option(
        "kafka-message-max-bytes",
        "1000000",
        "a size from 1k to 1g",
        "largest message; a longer line is dead-lettered",
        size_between(1000, 10**9),
    )
    message_timeout: int = option(
        "kafka-message-timeout", "2m", "a duration", "librdkafka's retries end here; then the pipeline's", _milliseconds
    )
    request_timeout: int = option(
        "kafka-request-timeout", "30s", "a duration", "a broker's acknowledgement", _milliseconds
    )
    connect_timeout: int = option(
        "kafka-connect-timeout", "10s", "a duration", "connect plus TLS and SASL", _milliseconds
    )
    linger: float = option("kafka-linger", "5ms", "a duration", "librdkafka's batching delay", parse_duration)
    tls: bool = option("kafka-tls", "false", _BOOL, "TLS to the brokers", parse_bool, transport=True)
    tls_ca: str = groups.tls_ca("kafka")
    tls_cert: str = groups.tls_cert("kafka")
    tls_key: str = groups.tls_key("kafka")
    tls_verify: bool = groups.tls_verify("kafka")
    sasl_mechanism: str = option(
        "kafka-sasl-mechanism",
        "none",
        "none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        "SASL authentication",
        choice("none", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        transport=True,
    )
    sasl_username: str = option("kafka-sasl-username", "", "a user name", "SASL user", credential=True)
    sasl_password: str = option(
        "kafka-sasl-password", "", "a password", "SASL password (plugin-wide only)", secret=True
    )


# librdkafka property → the option that set it, to name it when librdkafka refuses a value.
_PROPERTY_OPTION = {
    "bootstrap.servers": "kafka-brokers",
    "compression.type": "kafka-compression",
    "ssl.ca.location": "kafka-tls-ca",
    "ssl.certificate.location": "kafka-tls-cert",
    "ssl.key.location": "kafka-tls-key",
    "sasl.mechanism": "kafka-sasl-mechanism",
    "linger.ms": "kafka-linger",
    "message.timeout.ms": "kafka-message-timeout",
}


def producer_config(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka's settings for these options; ``ConfigError`` for a combination it cannot use."""
    idempotence = config.idempotence
    if idempotence and config.acks != "all":
        raise ConfigError("kafka-acks", config.acks, "all while kafka-idempotence is true")
    if idempotence and config.max_in_flight > 5:
        raise ConfigError("kafka-max-in-flight", str(config.max_in_flight), "1 to 5 with idempotence")
    if not config.brokers:
        raise ConfigError("kafka-brokers", "", "host:port, comma-separated")
    settings: dict[str, Any] = {
        "bootstrap.servers": config.brokers,
        "client.id": "logdriver",
        "enable.idempotence": idempotence,
        "acks": config.acks,
        "compression.type": config.compression,
        "max.in.flight.requests.per.connection": config.max_in_flight,
        "message.max.bytes": config.message_max_bytes,
        "message.timeout.ms": config.message_timeout,
        "request.timeout.ms": config.request_timeout,
        "socket.connection.setup.timeout.ms": config.connect_timeout,
        "linger.ms": config.linger * 1000,
        # The producer's share of the memory budget (README): at most 64 MiB queued.
        "queue.buffering.max.kbytes": 65536,
        # A broker that comes back is found within 2 s (librdkafka's default backs off to 10 s).
        "reconnect.backoff.max.ms": 2000,
        "log.connection.close": False,
    }
    tls = config.tls
    if tls:
        client_tls_context(  # a missing or unreadable file fails docker run, naming its option
            config.tls_ca,
            config.tls_cert,
            config.tls_key,
            config.tls_verify,
            prefix="kafka-tls-",
        )
        verify = config.tls_verify
        settings["enable.ssl.certificate.verification"] = verify
        settings["ssl.endpoint.identification.algorithm"] = "https" if verify else "none"
        for path, name in ((config.tls_ca, "ca"), (config.tls_cert, "certificate"), (config.tls_key, "key")):
            if path:
                settings[f"ssl.{name}.location"] = path
    mechanism = config.sasl_mechanism
    if mechanism != "none":
        if not config.sasl_username:
            raise ConfigError("kafka-sasl-username", "", f"a user name for {mechanism}")
        if not config.sasl_password:
            raise ConfigError(
                "LOGDRIVER_KAFKA_SASL_PASSWORD",
                "",
                f"the password for {mechanism}, set plugin-wide; it goes only to LOGDRIVER_KAFKA_BROKERS",
            )
        settings["sasl.mechanism"] = mechanism
        settings["sasl.username"] = config.sasl_username
        settings["sasl.password"] = config.sasl_password
    settings["security.protocol"] = ("SASL_" if mechanism != "none" else "") + ("SSL" if tls else "PLAINTEXT")
    return settings


def _key(config: Mapping[str, Any]) -> Hashable:
    return tuple(sorted(config.items()))


class KafkaSink(Sink):
    name = "kafka"
    config = KafkaConfig
    # librdkafka retries within kafka-message-timeout; the pipeline retries after that.
    # A request waits for its last line's acknowledgement before the next one starts:
    # 20,000 lines a request make that wait a smaller share of the time.
    pipeline_defaults: ClassVar[Mapping[str, str]] = {
        "batch-max-entries": "20000",
        "retry-initial": "200ms",
        "retry-max-delay": "5s",
        "flush-timeout": "30s",
    }

    def __init__(self) -> None:
        self.events = {
            "producers_opened": 0,
            "broker_errors": 0,
            "producer_restarts": 0,
            "stalled_requests": 0,
            "full_queue_waits": 0,
        }
        self.open_producers: set[Hashable] = set()  # their keys; a producer's close takes its own out
        # The producer of the plugin-wide brokers and settings: it always has its place,
        # whatever containers with settings of their own have opened (or left draining).
        self.operator_key: Hashable | None = None
        # A request and a close at once per producer at most: never short of a thread.
        self.threads = trio.CapacityLimiter(2 * MAX_PRODUCERS)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSink:
        sink = cls()
        with contextlib.suppress(ValueError):  # a bad plugin-wide setting stops the plugin at start, naming it
            sink.operator_key = _key(producer_config(KafkaConfig.from_environ(settings.environ)))
        return sink

    def destination(self, context: ContainerContext) -> Hashable:
        """Containers with the same brokers and producer settings share one producer and
        requests (each message names its own topic)."""
        return _key(producer_config(context.config(KafkaConfig)))

    def open_client(self, destination: Hashable) -> SharedProducer:
        """The producer of a destination: the plugin-wide one always, containers' own up to
        ``MAX_PRODUCERS - 1`` at once."""
        config = dict(cast(tuple[tuple[str, Any], ...], destination))
        others = sum(1 for open_key in self.open_producers if open_key != self.operator_key)
        if destination != self.operator_key and others >= MAX_PRODUCERS - 1:
            raise ConfigError(
                "kafka-brokers",
                config["bootstrap.servers"][:200],
                f"the brokers and settings of a running container: {MAX_PRODUCERS} producers are open, "
                "the most one plugin runs",
            )
        report_timeout = config["message.timeout.ms"] / 1000 + 30
        try:
            producer = SharedProducer(
                destination, config, report_timeout, self.events, self.threads, self.open_producers.discard
            )
        except KafkaException as exc:
            text = str(exc.args[0].str() if exc.args else exc)
            option = next((o for p, o in _PROPERTY_OPTION.items() if p in text), "kafka-brokers")
            raise ConfigError(option, "<see reason>", text[:200]) from None
        self.open_producers.add(destination)
        self.events["producers_opened"] += 1
        log.info("kafka: producer opened for %s", config["bootstrap.servers"])
        return producer

    def open_stream(self, context: ContainerContext, client: SharedProducer) -> KafkaStream:
        return KafkaStream(context, context.config(KafkaConfig), client)

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        return await send_shared(parts)

    def counters(self) -> Mapping[str, int]:
        return self.events


async def send_shared(parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
    """Every container's lines in one request on the destination's producer."""
    streams = [cast(KafkaStream, stream) for stream, _ in parts]
    request = await streams[0].producer.send(
        [stream.outgoing(batch) for stream, (_, batch) in zip(streams, parts, strict=True)]
    )
    if not request.retry and not request.rejected:
        return [DELIVERED] * len(parts)
    # Request indexes run through the parts in order: one pass over the sorted failures
    # (a broker outage fails every line of every container).
    retry = iter(request.retry)
    rejected = iter(sorted(request.rejected.items()))
    next_retry, next_rejected = next(retry, None), next(rejected, None)
    results = []
    start = 0
    for _, batch in parts:
        stop = start + len(batch)
        part_retry = []
        while next_retry is not None and next_retry < stop:
            part_retry.append(next_retry - start)
            next_retry = next(retry, None)
        part_rejected = {}
        while next_rejected is not None and next_rejected[0] < stop:
            part_rejected[next_rejected[0] - start] = next_rejected[1]
            next_rejected = next(rejected, None)
        results.append(SendResult(retry=part_retry, rejected=part_rejected))
        start = stop
    return results


def _rendered(option: str, template: str, info: ContainerInfo) -> str:
    try:
        return Template.parse(template).render(info)
    except ValueError as exc:
        raise ConfigError(option, template, f"Docker tag variables ({str(exc)[:120]})") from None


def _headers(context: ContainerContext, stream: str) -> list[tuple[str, bytes]]:
    """The JSON record's container fields and the line's stream, the extras flattened."""
    fields = context.record_fields()
    extras = cast(Mapping[str, str], fields.pop("attrs", {}))
    return [
        *((name, str(value).encode()) for name, value in fields.items()),
        ("stream", stream.encode()),
        *((name, value.encode()) for name, value in extras.items()),
    ]


class KafkaStream(SinkStream):
    def __init__(self, context: ContainerContext, config: KafkaConfig, producer: SharedProducer) -> None:
        info = context.info
        self.topic = _rendered("kafka-topic", config.topic or "", info)
        if not _TOPIC.fullmatch(self.topic) or self.topic in (".", ".."):
            raise ConfigError("kafka-topic", self.topic, "a topic name of 1-249 characters from [A-Za-z0-9._-]")
        self.key = _rendered("kafka-key", config.key or "", info).encode() or None
        self.raw = config.format == "raw"
        self._suffix = b"," + orjson.dumps(context.record_fields())[1:]
        # Headers cost librdkafka about 1 µs a line, and a JSON record already carries the
        # same fields: by default only raw lines get them.
        headers = config.headers == "true" or (config.headers == "auto" and self.raw)
        self.headers: tuple[Any, Any, Any] = (None, None, None)  # by stream: stdout, stderr, a marker
        if headers:
            self.headers = tuple(_headers(context, s) for s in ("stdout", "stderr", MARKER_SOURCE))  # type: ignore[assignment]
        self.producer = producer

    def outgoing(self, batch: LogBatch) -> Outgoing:
        return Outgoing(self.topic, self.key, self.headers, messages(batch.columns(), self._suffix, self.raw))

    async def send_batch(self, batch: LogBatch) -> SendResult:
        return (await send_shared([(self, batch)]))[0]

    async def aclose(self) -> None:
        return None

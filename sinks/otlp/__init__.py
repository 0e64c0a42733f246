"""OpenTelemetry sink: OTLP/HTTP logs with protobuf bodies, to a Collector or any OTLP backend.

Each container's batch becomes one ``ResourceLogs`` (rendered in ``native/``: its
``Resource`` says which container, host and service the records come from), and the
containers sharing an endpoint and its settings share one ``ExportLogsServiceRequest``
per send (``send_together``), gzip-compressed by default, over one httpx connection pool
per destination (the ``Exporter``, the plugin's to open and close). Verdicts come from ``_export.judge``.

Counters (``logdriver_sink_events{sink="otlp"}``): ``partial_rejections`` (records a
server's partial success refused), ``unreadable_responses`` (a 2xx whose body was not an
OTLP response: counted as delivered), ``throttled`` (429/502/503/504 answers),
``partial_resent_alone`` (parts of a shared request sent again alone after a partial
success, so that its refusal falls on the container whose records it was).
"""

from __future__ import annotations

import logging
import socket
import urllib.parse
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import httpx
import trio
from zlib_ng import zlib_ng

from logdriver import LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import SinkConfig, TlsSettings, choice, groups, option, tls_settings
from logdriver.replies import HttpClient

from ._export import Verdict, judge
from ._render import encode_resource, export_request, resource_logs

log = logging.getLogger("logdriver.sinks.otlp")

__all__ = ["OtlpSink"]

_BOOL = "true or false"
SCOPE = b"\x0a\x09logdriver"  # InstrumentationScope{name: "logdriver"}
MAX_HEADERS = 32
# Bytes of a reply read, raw and decoded: a real one is a few hundred (a partial success
# and its message); past this it is judged on what was read (a 2xx then is unreadable).
MAX_REPLY = 64 << 10


def _endpoint(value: str) -> str:
    """A base URL (``/v1/logs`` is added, as OTEL_EXPORTER_OTLP_ENDPOINT) or a full one ending in it."""
    url = urllib.parse.urlsplit(value.strip())
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ValueError(value)
    path = url.path.rstrip("/")
    if not path.endswith("/v1/logs"):
        path += "/v1/logs"
    return urllib.parse.urlunsplit((url.scheme, url.netloc, path, "", ""))


def _headers(value: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key2=value2`` as OTEL_EXPORTER_OTLP_HEADERS (values may be %-encoded)."""
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("-", "").isalnum():
            raise ValueError("key=value pairs")
        val = urllib.parse.unquote(val.strip())
        if not val.isprintable():  # %0d%0a would split the request's headers
            raise ValueError("values without control characters")
        pairs.append((key.lower(), val))
    if len(pairs) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    return tuple(pairs)


def image_and_tag(reference: str) -> tuple[str, str]:
    """``registry:5000/app:1.2`` → (``registry:5000/app``, ``1.2``); a digest has no tag."""
    name = reference.split("@", 1)[0]
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # the colon was a registry's port
        return name, ""
    return repository, tag


@dataclass(frozen=True, slots=True)
class OtlpConfig(SinkConfig):
    """The OTLP sink's options for one container (its log-opts over ``LOGDRIVER_<NAME>`` defaults)."""

    endpoint: str = option(
        "otlp-endpoint",
        "http://127.0.0.1:4318",
        "an http(s) URL: a base (/v1/logs is added) or one ending in /v1/logs",
        "where records are exported (OTLP/HTTP, protobuf)",
        _endpoint,
        destination=True,
    )
    headers: tuple[tuple[str, str], ...] | None = option(
        "otlp-headers",
        "",
        "key=value pairs, comma-separated (values %-encoded)",
        "request headers, such as authorization (plugin-wide only)",
        _headers,
        secret=True,
    )
    compression: str = option(
        "otlp-compression", "gzip", "gzip or none", "request body compression", choice("gzip", "none")
    )
    timeout: float = groups.request_timeout("otlp")
    service_name: str = option(
        "otlp-service-name",
        "",
        "a name",
        "service.name of the records; empty: the Compose service label, else the container name",
    )
    tls_ca: str = groups.tls_ca("otlp")
    tls_cert: str = groups.tls_cert("otlp")
    tls_key: str = groups.tls_key("otlp")
    tls_verify: bool = groups.tls_verify("otlp")


@dataclass(frozen=True, slots=True)
class Destination:
    """What containers must share to share requests: the endpoint and how it is reached."""

    endpoint: str
    headers: tuple[tuple[str, str], ...]
    compression: str
    timeout: float
    tls: TlsSettings


# What an endpoint that does not answer HTTP/1.1 most often is: the Collector's gRPC port.
NOT_HTTP1 = "the endpoint does not answer HTTP/1.1; if it is an OTLP/gRPC port (4317), use the OTLP/HTTP one (4318)"


class Exporter:
    """One destination's connection pool, shared by its containers (the plugin opens and closes it)."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.http = HttpClient(destination.endpoint, destination.tls, destination.timeout, MAX_REPLY)
        self.headers = {"content-type": "application/x-protobuf", **dict(destination.headers)}
        if destination.compression == "gzip":
            self.headers["content-encoding"] = "gzip"

    async def export(self, body: bytes, size: int) -> Verdict:
        if self.destination.compression == "gzip":
            body = zlib_ng.compress(body, 1, 31)
        try:
            reply = await self.http.post(self.destination.endpoint, body, self.headers)
        except trio.TooSlowError:
            return Verdict(retry=True, reason=f"no whole answer within otlp-timeout ({self.destination.timeout:g}s)")
        except httpx.RemoteProtocolError as exc:
            return Verdict(retry=True, reason=f"{type(exc).__name__}: {NOT_HTTP1}")
        except httpx.HTTPError as exc:
            return Verdict(retry=True, reason=type(exc).__name__)
        return judge(reply.status, reply.body, dict(reply.headers), size)

    async def aclose(self) -> None:
        await self.http.aclose()


class OtlpSink(Sink):
    name = "otlp"
    config = OtlpConfig
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"retry-initial": "200ms", "flush-timeout": "30s"}

    def __init__(self) -> None:
        self.events = {"partial_rejections": 0, "unreadable_responses": 0, "throttled": 0, "partial_resent_alone": 0}
        self._failing = False

    @classmethod
    def from_settings(cls, settings: Settings) -> OtlpSink:
        return cls()

    def destination(self, context: ContainerContext) -> Destination:
        config = context.config(OtlpConfig)
        tls = tls_settings(config)
        if config.endpoint.startswith("https:"):  # a bad file fails docker run naming its option
            tls.context()
        return Destination(
            endpoint=config.endpoint,
            headers=config.headers or (),
            compression=config.compression,
            timeout=config.timeout,
            tls=tls,
        )

    def open_client(self, destination: Hashable) -> Exporter:
        assert isinstance(destination, Destination)
        return Exporter(destination)

    def open_stream(self, context: ContainerContext, client: Exporter) -> SinkStream:
        return OtlpStream(self, context, context.config(OtlpConfig), client)

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        """One export request carrying one ResourceLogs per container."""
        streams = [cast(OtlpStream, stream) for stream, _ in parts]
        sizes = [len(batch) for _, batch in parts]
        body = export_request([stream.render(batch) for stream, (_, batch) in zip(streams, parts, strict=True)])
        verdict = await streams[0].exporter.export(body, sum(sizes))
        if verdict.rejected and len(parts) > 1:
            # OTLP does not say which records were refused: the last ones of a shared request
            # may be a neighbour's. Each part goes again alone, so that a refusal falls on its
            # own container only (what the server accepted arrives twice: at least once).
            self.events["partial_resent_alone"] += len(parts)
            return [(await self.send_together([part]))[0] for part in parts]
        return self.results(verdict, sizes)

    def results(self, verdict: Verdict, sizes: list[int]) -> list[SendResult]:
        """Each part's verdict: a partial rejection falls on the request's last records."""
        if verdict.unreadable:
            self.events["unreadable_responses"] += 1
            log.warning("otlp: a success answer that is not an OTLP response; counted as delivered")
        if verdict.retry:
            self.events["throttled"] += verdict.reason.startswith("HTTP")
            if not self._failing:
                self._failing = True
                log.warning("otlp: export failed (%s); retrying later", verdict.reason)
            return [SendResult.retry_all(size, verdict.retry_after) for size in sizes]
        if self._failing:
            self._failing = False
            log.warning("otlp: exports succeed again")
        if not verdict.rejected:
            return [DELIVERED for _ in sizes]
        self.events["partial_rejections"] += verdict.rejected
        first_rejected = sum(sizes) - verdict.rejected
        results, offset = [], 0
        for size in sizes:
            refused = {i: verdict.reason for i in range(size) if offset + i >= first_rejected}
            results.append(SendResult(rejected=refused) if refused else DELIVERED)
            offset += size
        return results

    def counters(self) -> Mapping[str, int]:
        return self.events


class OtlpStream(SinkStream):
    def __init__(self, sink: OtlpSink, context: ContainerContext, config: OtlpConfig, exporter: Exporter) -> None:
        self.sink = sink
        info = context.info
        labels = info.labels
        image, tag = image_and_tag(info.image_name)
        service = config.service_name or labels.get("com.docker.compose.service") or info.name.removeprefix("/")
        attributes = [
            ("container.id", info.container_id),
            ("container.name", info.name.removeprefix("/")),
            ("container.image.name", image),
            ("container.runtime", "docker"),
            ("host.name", socket.gethostname()),
            ("service.name", service),
        ]
        if tag:
            attributes.append(("container.image.tags", tag))
        if project := labels.get("com.docker.compose.project"):
            attributes.append(("service.namespace", project))
        for key, value in context.extras.items():
            kind = "label" if info.labels.get(key) == value else "env"
            attributes.append((f"container.{kind}.{key}", value))
        self.resource = encode_resource(attributes)
        self.exporter = exporter

    def render(self, batch: LogBatch) -> bytes:
        return resource_logs(batch.columns(), self.resource, SCOPE)

    async def send_batch(self, batch: LogBatch) -> SendResult:
        return (await self.sink.send_together([(self, batch)]))[0]

    async def aclose(self) -> None:
        return None

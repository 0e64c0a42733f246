"""Loki sink: Loki's push API, and a drop-in for Grafana's Loki logging driver.

A container's log-opts for the Loki driver work unchanged (``docker run --log-driver
logdriver --log-opt loki-url=...``: naming ``loki-url`` without ``sinks`` selects this
sink). Each container is one Loki stream: its labels are the Loki driver's (``host``,
``filename``, ``container_name`` from ``loki-external-labels``, Compose's and Swarm's
names, the ``labels``/``env`` extras, then ``loki-relabel-config``), and what varies per
line goes in structured metadata (``native/``). The containers sharing a push URL and its
settings share one push per send (``send_together``): protobuf with snappy, as the Loki
driver sends, or JSON with gzip (``loki-format``), over one connection pool per
destination (the plugin opens and closes it). Verdicts come from ``_push.judge``.

Counters (``logdriver_sink_events{sink="loki"}``): ``throttled`` (429 and 5xx answers),
``refused_pushes`` (400, 413 and the like: their lines are dead-lettered with Loki's reason),
``relabel_dropped_lines`` (lines of containers whose stream ``loki-relabel-config`` drops).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import httpx
import trio
from zlib_ng import zlib_ng

from logdriver import ConfigError, LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import (
    SinkConfig,
    Template,
    TlsSettings,
    choice,
    groups,
    int_between,
    option,
    parse_duration,
    size_between,
    tls_settings,
)
from logdriver.replies import HttpClient

from ._push import LabelSet, Verdict, compose_labels, external_labels, judge, label_name, push_url
from ._relabel import Rule, parse_relabel_config, relabel
from ._render import json_stream, proto_stream, snappy
from ._stages import expand

log = logging.getLogger("logdriver.sinks.loki")

__all__ = ["LokiSink"]

_BOOL = "true or false"
MAX_REPLY = 64 << 10  # bytes of a reply read: Loki's reasons are a line or two


def _tenant(value: str) -> str:
    if len(value) > 150 or not value.isprintable():
        raise ValueError(value)
    return value


def _proxy(value: str) -> str:
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(value)
    return value


@dataclass(frozen=True, slots=True)
class LokiConfig(SinkConfig):
    """The Loki sink's options: the Loki driver's, with its names and defaults."""

    url: str = option(
        "loki-url",
        "",
        "the full push URL, such as http://loki:3100/loki/api/v1/push",
        "where lines are pushed; naming it without sinks selects this sink",
        push_url,
        destination=True,
    )
    external_labels: tuple[tuple[str, Template], ...] = option(
        "loki-external-labels",
        "container_name={{.Name}}",
        "name=value pairs, comma-separated (values may use Docker tag templates)",
        "labels of the container's stream; setting it replaces the default",
        external_labels,
    )
    timeout: float = groups.request_timeout("loki")
    batch_wait: float = option(
        "loki-batch-wait",
        "1s",
        "a duration",
        "longest wait before a push",
        parse_duration,
        pipeline="batch-max-wait",
    )
    batch_size: int = option(
        "loki-batch-size",
        "1048576",
        "a size from 1k to 32Mi",
        "bytes of lines per push",
        size_between(1024, 32 << 20),
        pipeline="batch-max-bytes",
    )
    min_backoff: float = option(
        "loki-min-backoff", "500ms", "a duration", "first retry delay", parse_duration, pipeline="retry-initial"
    )
    max_backoff: float = option(
        "loki-max-backoff", "5m", "a duration", "longest retry delay", parse_duration, pipeline="retry-max-delay"
    )
    retries: int = option(
        "loki-retries",
        "0",
        "an integer from 0 to 4294967295; 0 retries forever",
        "attempts before a push's lines are dropped, counted (the Loki driver's default is 10)",
        int_between(0, 4_294_967_295),
        pipeline="retry-max-attempts",
    )
    tenant_id: str = option("loki-tenant-id", "", "a tenant name", "sent as X-Scope-OrgID", _tenant, credential=True)
    format: str = option(
        "loki-format",
        "protobuf",
        "protobuf or json",
        "push body: protobuf with snappy (the Loki driver's), or JSON with gzip",
        choice("protobuf", "json"),
    )
    username: str = option("loki-username", "", "a user name", "basic authentication", credential=True)
    password: str = option("loki-password", "", "a password", "basic authentication (plugin-wide only)", secret=True)
    bearer_token: str = option(
        "loki-bearer-token", "", "a token", "Authorization: Bearer (plugin-wide only)", secret=True
    )
    proxy_url: str = option(
        "loki-proxy-url", "", "an http(s) URL", "HTTP proxy to reach the push URL through", _proxy, transport=True
    )
    # The TLS group, under the Loki driver's names.
    tls_ca: str = groups.tls_ca("loki", "loki-tls-ca-file")
    tls_cert: str = groups.tls_cert("loki", "loki-tls-cert-file")
    tls_key: str = groups.tls_key("loki", "loki-tls-key-file")
    tls_server_name: str = groups.tls_server_name("loki")
    tls_verify: bool = groups.tls_verify("loki", insecure_skip=True)
    pipeline_stages: str = option(
        "loki-pipeline-stages",
        "",
        "promtail pipeline stages, YAML",
        "run as logdriver's own steps (multiline, parse=json, drop-lines, redact-pattern, rate-limit); "
        "docs/sinks/loki.md maps each stage",
    )
    pipeline_stage_file: str = option(
        "loki-pipeline-stage-file",
        "",
        "a path to a regular YAML file of at most 64 KiB",
        "as loki-pipeline-stages, from a file the plugin can read",
    )
    line: str = option(
        "loki-line",
        "line",
        "line or message",
        "what each entry's line is: the line as written, or parse=json's message (the output stage)",
        choice("line", "message"),
    )
    relabel_config: tuple[Rule, ...] | None = option(
        "loki-relabel-config",
        "",
        "Prometheus relabel_configs YAML",
        "applied once to the container's labels (replace, keep, drop, labelmap, labeldrop, labelkeep)",
        parse_relabel_config,
    )


@dataclass(frozen=True, slots=True)
class Destination:
    """What containers must share to share pushes: where, how, and as whom."""

    url: str
    tenant_id: str
    format: str
    timeout: float
    auth: tuple[str, str, str]  # user, password, bearer token
    proxy_url: str
    tls: TlsSettings


class Pusher:
    """One destination's connection pool, shared by its containers (the plugin opens and closes it)."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        user, password, token = destination.auth
        self.http = HttpClient(
            destination.url,
            destination.tls,
            destination.timeout,
            MAX_REPLY,
            proxy=destination.proxy_url,
            auth=httpx.BasicAuth(user, password) if user or password else None,
        )
        self.headers = {"content-type": "application/x-protobuf"}
        if destination.format == "json":
            self.headers = {"content-type": "application/json", "content-encoding": "gzip"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        if destination.tenant_id:
            self.headers["x-scope-orgid"] = destination.tenant_id

    def body(self, streams: list[bytes]) -> bytes:
        if self.destination.format == "json":
            return zlib_ng.compress(b'{"streams":[' + b",".join(streams) + b"]}", 1, 31)
        return snappy(b"".join(streams))

    async def push(self, body: bytes) -> Verdict:
        try:
            reply = await self.http.post(self.destination.url, body, self.headers)
        except trio.TooSlowError:
            return Verdict(retry=True, reason=f"no whole answer within loki-timeout ({self.destination.timeout:g}s)")
        except httpx.HTTPError as exc:
            return Verdict(retry=True, reason=type(exc).__name__)
        return judge(reply.status, reply.body, reply.headers)

    async def aclose(self) -> None:
        await self.http.aclose()


class LokiSink(Sink):
    name = "loki"
    config = LokiConfig
    selected_by: ClassVar[str] = "loki-url"
    # The Loki driver's batching and backoff, as its options' defaults say. The driver
    # batches by bytes alone: up to 20,000 short lines go in one push, as in Kafka's requests.
    pipeline_defaults: ClassVar[Mapping[str, str]] = {
        "batch-max-entries": "20000",
        "batch-max-bytes": "1Mi",
        "retry-initial": "500ms",
        "retry-max-delay": "5m",
        "flush-timeout": "30s",
    }

    def __init__(self) -> None:
        self.events = {"throttled": 0, "refused_pushes": 0, "relabel_dropped_lines": 0}
        self._failing = False

    @classmethod
    def from_settings(cls, settings: Settings) -> LokiSink:
        return cls()

    def expand_log_opts(self, config: Mapping[str, str]) -> Mapping[str, str]:
        """The Loki driver's pipeline stages as logdriver's steps (``_stages.py``)."""
        return expand(config)

    def destination(self, context: ContainerContext) -> Destination:
        config = context.config(LokiConfig)
        if not config.url:
            raise ConfigError("loki-url", "", "the full push URL, such as http://loki:3100/loki/api/v1/push")
        tls = tls_settings(config)
        if config.url.startswith("https:"):  # a bad file fails docker run, naming its option
            tls.context()
        return Destination(
            url=config.url,
            tenant_id=config.tenant_id,
            format=config.format,
            timeout=config.timeout,
            auth=(config.username, config.password or "", config.bearer_token or ""),
            proxy_url=config.proxy_url,
            tls=tls,
        )

    def open_client(self, destination: Hashable) -> Pusher:
        assert isinstance(destination, Destination)
        return Pusher(destination)

    def open_stream(self, context: ContainerContext, client: Pusher) -> SinkStream:
        return LokiStream(self, context, context.config(LokiConfig), client)

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        """One push carrying one stream per container."""
        streams = [cast(LokiStream, stream) for stream, _ in parts]
        if any(stream.dropped for stream in streams):
            dropped = sum(len(batch) for stream, (_, batch) in zip(streams, parts, strict=True) if stream.dropped)
            self.events["relabel_dropped_lines"] += dropped
            kept = [part for stream, part in zip(streams, parts, strict=True) if not stream.dropped]
            sent = iter(await self.send_together(kept) if kept else ())
            return [DELIVERED if stream.dropped else next(sent) for stream in streams]
        pusher = streams[0].pusher
        body = pusher.body([stream.render(batch) for stream, (_, batch) in zip(streams, parts, strict=True)])
        verdict = await pusher.push(body)
        sizes = [len(batch) for _, batch in parts]
        if verdict.retry:
            self.events["throttled"] += verdict.reason.startswith("HTTP")
            if not self._failing:
                self._failing = True
                log.warning("loki: push failed (%s); retrying later", verdict.reason)
            return [SendResult.retry_all(size, verdict.retry_after) for size in sizes]
        if self._failing:
            self._failing = False
            log.warning("loki: pushes succeed again")
        if not verdict.rejected:
            return [DELIVERED] * len(parts)
        self.events["refused_pushes"] += 1
        if len(parts) > 1:
            # Loki refuses a whole push for one stream's fault (an entry too old, a bad
            # label): each container's part goes again alone, so that the refusal falls
            # on its own lines only.
            return [(await self.send_together([part]))[0] for part in parts]
        return [SendResult(rejected=dict.fromkeys(range(size), verdict.reason)) for size in sizes]

    def counters(self) -> Mapping[str, int]:
        return self.events


class LokiStream(SinkStream):
    def __init__(self, sink: LokiSink, context: ContainerContext, config: LokiConfig, pusher: Pusher) -> None:
        self.sink = sink
        self.pusher = pusher
        info = context.info
        labels: dict[str, str] = {"host": socket.gethostname()}
        if info.log_path:
            labels["filename"] = info.log_path
        labels.update(compose_labels(info.labels))
        for name, template in config.external_labels or ():
            labels[name] = template.render(info)
        labels.update((label_name(key), value) for key, value in context.extras.items())
        relabelled = relabel(config.relabel_config, labels) if config.relabel_config else labels
        # A keep or drop rule that drops the stream: this container's lines are not pushed.
        self.dropped = relabelled is None
        if self.dropped:
            log.info("loki: loki-relabel-config drops container %s's stream; its lines are counted", info.short_id)
        self.labels = LabelSet.of(relabelled or labels)
        self.metadata = [("container_id", info.container_id)]
        if context.tag:
            self.metadata.append(("tag", context.tag))
        self.json = config.format == "json"
        self.message_line = config.line == "message"
        self._labels_text = self.labels.text()
        self._labels_json = self.labels.json()

    def render(self, batch: LogBatch) -> bytes:
        if self.json:
            return json_stream(batch.columns(), self._labels_json, self.metadata, self.message_line)
        return proto_stream(batch.columns(), self._labels_text, self.metadata, self.message_line)

    async def send_batch(self, batch: LogBatch) -> SendResult:
        return (await self.sink.send_together([(self, batch)]))[0]

    async def aclose(self) -> None:
        return None

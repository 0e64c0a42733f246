"""Elasticsearch/OpenSearch sink: idempotent bulk over ``elastic_transport`` on trio.

Each batch is one ``_bulk`` request of ``create`` actions with deterministic
ids (``_bulk.py``), gzip-compressed by default, through
``elastic_transport.AsyncTransport`` with the httpx async node (trio-capable)
and ``max_retries=0``: the pipeline owns retries and sleeps with trio. Plain
media types and no product check, so the same code talks to Elasticsearch
7-9 and OpenSearch 1-3. Several ``es-url`` values fail over.

Verdicts: item 429/5xx and transport failures are retried; 409 means an
earlier attempt already indexed the line (delivered, counted as
``duplicates_avoided``); other item errors go to the dead letters with the
server's reason; a 413 splits the batch in halves (a single line still too
big is rejected); a top-level 429/5xx/timeout retries the batch.

Counters (``logdriver_sink_events{sink="elasticsearch"}``):
``duplicates_avoided``, ``split_batches``, ``auth_failures``, ``templates_installed``,
``data_streams_unavailable`` (a server without data streams: the data stream's name became an
ordinary index).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from logdriver import ConfigError, LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import SinkConfig, Template, client_tls_context, groups, option, parse_bool, parse_duration

from ._bulk import BulkEncoder, Target, item_verdicts
from ._client import BulkClient, ClientOptions, NodeUrl, Outcome, lacks_data_streams, parse_urls, template_body

log = logging.getLogger("logdriver.sinks.elasticsearch")

__all__ = ["ElasticsearchSink"]

_BOOL = "true or false"
_FILTER = "errors,items.*.status,items.*.error"  # keeps every item, so positions line up


def _index_template(value: str) -> str:
    Template.parse(value)  # ValueError names what is wrong
    return value


# Elasticsearch's rules for index and data stream names, kept strict: a name also becomes
# part of a template's URL path, so nothing a log-opt holds may reach another API.
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,254}")
_PIPELINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def index_name(value: str) -> str:
    """An index or data stream name: lowercase letters, digits, ``.``, ``_``, ``-``,
    not starting with ``.``, ``_``, ``-`` or ``+``, at most 255 bytes."""
    if not _INDEX_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(value)
    return value


def _pipeline_id(value: str) -> str:
    if value and not _PIPELINE_ID.fullmatch(value):
        raise ValueError(value)
    return value


@dataclass(frozen=True, slots=True)
class ElasticsearchConfig(SinkConfig):
    """The Elasticsearch sink's options for one container (its log-opts over ``LOGDRIVER_<NAME>`` defaults)."""

    url: tuple[NodeUrl, ...] = option(
        "es-url",
        "http://127.0.0.1:9200",
        "http(s)://host:port[/prefix], comma-separated",
        "nodes; a failed node is skipped and retried later",
        parse_urls,
        destination=True,
    )
    data_stream: str = option(
        "es-data-stream",
        "logs-docker-default",
        "a data stream name (type-dataset-namespace) of lowercase letters, digits, '.', '_' and '-'",
        "where documents go unless es-index is set",
        index_name,
    )
    index: str | None = option(
        "es-index",
        "",
        "an index name with Docker tag variables and strftime dates, e.g. logs-{{.Name}}-%Y.%m.%d",
        "write to indices instead of a data stream",
        _index_template,
    )
    pipeline: str | None = option(
        "es-pipeline",
        "",
        "an ingest pipeline id of letters, digits, '.', '_' and '-'",
        "ingest pipeline for every document",
        _pipeline_id,
    )
    compress: bool = option("es-compress", "true", _BOOL, "gzip request bodies", parse_bool)
    install_template: bool = option(
        "es-install-template", "false", _BOOL, "install an index template with logdriver's mappings", parse_bool
    )
    request_timeout: float = option(
        "es-request-timeout", "30s", "a duration such as 30s", "one bulk request", parse_duration
    )
    username: str = option("es-username", "", "a user name", "basic authentication", credential=True)
    password: str = option("es-password", "", "a password", "basic authentication (plugin-wide only)", secret=True)
    api_key: str = option(
        "es-api-key", "", "the encoded API key", "Elasticsearch API key (plugin-wide only)", secret=True
    )
    bearer_token: str = option(
        "es-bearer-token", "", "a token", "bearer authentication (plugin-wide only)", secret=True
    )
    tls_ca: str = groups.tls_ca("es")
    tls_cert: str = groups.tls_cert("es")
    tls_key: str = groups.tls_key("es")
    tls_verify: bool = groups.tls_verify("es")


def _data_stream_fields(name: str) -> dict[str, str]:
    kind, _, rest = name.partition("-")
    dataset, _, namespace = rest.rpartition("-")
    return {"type": kind, "dataset": dataset or rest, "namespace": namespace or "default"}


class ElasticsearchSink(Sink):
    name = "elasticsearch"
    config = ElasticsearchConfig
    # A node indexes a few thousand lines a second on a small host: give a stopped
    # container's queued lines time to get there (StopLogging never waits for this).
    pipeline_defaults: ClassVar[Mapping[str, str]] = {
        "retry-initial": "200ms",
        "retry-max-delay": "1s",
        "flush-timeout": "30s",
    }

    def __init__(self) -> None:
        self.events = {
            "duplicates_avoided": 0,
            "split_batches": 0,
            "auth_failures": 0,
            "templates_installed": 0,
            "data_streams_unavailable": 0,
        }
        self._failing = False  # logs the start and the end of a run of failed requests once each

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchSink:
        return cls()

    def destination(self, context: ContainerContext) -> ClientOptions:
        """Containers on the same nodes with the same credentials share a transport and bulk
        requests (each document names its own index)."""
        config = context.config(ElasticsearchConfig)
        options = ClientOptions(
            urls=config.url,
            compress=config.compress,
            request_timeout=config.request_timeout,
            username=config.username,
            password=config.password,
            api_key=config.api_key,
            bearer_token=config.bearer_token,
            ca_file=config.tls_ca,
            cert_file=config.tls_cert,
            key_file=config.tls_key,
            verify=config.tls_verify,
        )
        if any(url.scheme == "https" for url in options.urls):
            # Load the files now, so that a bad one fails docker run naming its option.
            client_tls_context(options.ca_file, options.cert_file, options.key_file, options.verify, prefix="es-tls-")
        return options

    def open_client(self, destination: Hashable) -> BulkClient:
        assert isinstance(destination, ClientOptions)
        return BulkClient(destination)

    def open_stream(self, context: ContainerContext, client: BulkClient) -> SinkStream:
        return ElasticsearchStream(self, context, context.config(ElasticsearchConfig), client)

    async def send_together(self, parts: Sequence[tuple[SinkStream, LogBatch]]) -> Sequence[SendResult]:
        """One bulk request for the lines of every container in ``parts`` (one destination)."""
        streams = [cast(ElasticsearchStream, stream) for stream, _ in parts]
        if len(parts) == 1:
            return [await streams[0].send_batch(parts[0][1])]
        results = [SendResult.retry_all(len(batch)) for _, batch in parts]
        ready = [i for i, stream in enumerate(streams) if await stream.template_ready()]
        if not ready:
            return results
        sizes = [len(parts[i][1]) for i in ready]
        outcome = await streams[ready[0]].client.bulk(
            b"".join(streams[i].encoder.encode(parts[i][1]) for i in ready), _FILTER
        )
        if outcome.status == 413:  # too big together: each container's part on its own (they split further)
            self.events["split_batches"] += 1
            for i in ready:
                results[i] = await streams[i].send_batch(parts[i][1])
            return results
        retry: list[int] = []
        rejected: dict[int, str] = {}
        self.judge(outcome, sum(sizes), 0, retry, rejected)
        offset = 0
        for i, size in zip(ready, sizes, strict=True):
            end = offset + size
            results[i] = self.verdict(
                [n - offset for n in retry if offset <= n < end],
                {n - offset: why for n, why in rejected.items() if offset <= n < end},
            )
            offset = end
        return results

    def judge(self, outcome: Outcome, size: int, offset: int, retry: list[int], rejected: dict[int, str]) -> None:
        """Add the verdicts of one bulk reply on ``size`` lines, numbered from ``offset``."""
        if outcome.status == 200 and isinstance(outcome.body, Mapping):
            verdict = item_verdicts(outcome.body, size)
            self.events["duplicates_avoided"] += verdict.duplicates
            retry.extend(offset + i for i in verdict.retry)
            rejected.update({offset + i: reason for i, reason in verdict.rejected.items()})
            return
        everything = range(offset, offset + size)
        if outcome.permanent or outcome.status == 413:  # 413 here: one line alone is too big
            rejected.update(dict.fromkeys(everything, outcome.reason))
        else:
            retry.extend(everything)
        if outcome.status in (401, 403):
            self.events["auth_failures"] += 1
        if not self._failing:
            self._failing = True
            log.warning("elasticsearch: %s; retrying later", outcome.reason)

    def verdict(self, retry: list[int], rejected: dict[int, str]) -> SendResult:
        if not retry and self._failing:
            self._failing = False
            log.warning("elasticsearch: bulk requests succeed again")
        if not retry and not rejected:
            return DELIVERED
        return SendResult(retry=retry, rejected=rejected)

    def counters(self) -> Mapping[str, int]:
        return self.events


class ElasticsearchStream(SinkStream):
    def __init__(
        self, sink: ElasticsearchSink, context: ContainerContext, config: ElasticsearchConfig, client: BulkClient
    ) -> None:
        self.sink = sink
        info = context.info
        self.container = info.short_id
        self.client = client
        self.client_options = client.options
        index = config.index or ""  # unset: a data stream
        if any(code in index for code in ("%H", "%I", "%M", "%S", "%p", "%f", "%s")):
            # Bulk bodies pick the index once per UTC day of log time.
            raise ConfigError("es-index", index, "date patterns of a day at the finest (%Y, %m, %d, %j, ...)")
        if index:
            try:
                name = Template.parse(index).render(info)
                # Each date code stands for digits: the name with them in place must be valid.
                index_name(re.sub(r"%[A-Za-z]", "0", name))
            except ValueError as exc:
                raise ConfigError(
                    "es-index", index, f'an index name (lowercase, no / \\ * ? " < > | , # : or space) ({exc})'
                ) from None
            self.target = Target(name, data_stream=False, pipeline=config.pipeline or "")
        else:
            self.target = Target(config.data_stream, data_stream=True, pipeline=config.pipeline or "")
        self.install_template = config.install_template
        labels = {k: v for k, v in context.extras.items() if info.labels.get(k) == v}
        fields: dict[str, Any] = {
            "container": {
                "id": info.container_id,
                "name": info.name.removeprefix("/"),
                "image": {"name": info.image_name},
                "labels": labels,
                "runtime": "docker",
            },
            "host": {"name": socket.gethostname()},
        }
        if context.extras:
            fields["labels"] = dict(context.extras)
        if context.tag:
            fields["tags"] = [context.tag]
        if self.target.data_stream:
            fields["data_stream"] = _data_stream_fields(self.target.name)
        self.encoder = BulkEncoder(info.container_id, fields, self.target)

    async def template_ready(self) -> bool:
        installed = self.target.name in self.client.templates
        return not self.install_template or installed or await self._install_template()

    async def send_batch(self, batch: LogBatch) -> SendResult:
        if not await self.template_ready():
            return SendResult.retry_all(len(batch))
        retry: list[int] = []
        rejected: dict[int, str] = {}
        await self._send(batch, 0, retry, rejected)
        return self.sink.verdict(retry, rejected)

    async def _send(self, batch: LogBatch, offset: int, retry: list[int], rejected: dict[int, str]) -> None:
        outcome = await self.client.bulk(self.encoder.encode(batch), _FILTER)
        size = len(batch)
        if outcome.status == 413 and size > 1:
            self.sink.events["split_batches"] += 1
            half = size // 2
            await self._send(batch.slice(0, half), offset, retry, rejected)
            await self._send(batch.slice(half, size), offset + half, retry, rejected)
            return
        self.sink.judge(outcome, size, offset, retry, rejected)

    async def _install_template(self) -> bool:
        name = self.target.name
        pattern = name if self.target.data_stream else name.split("%", 1)[0] + "*"
        template_name = f"logdriver-{pattern.strip('*').rstrip('-.') or 'logs'}"
        outcome = await self.client.put_template(template_name, template_body(pattern, self.target.data_stream))
        if self.target.data_stream and lacks_data_streams(outcome):
            # Elasticsearch's open-source build (7.x without x-pack) has no data streams: bulk
            # `create` into the name makes an ordinary index. Give that index our mappings.
            log.warning(
                "elasticsearch: %s has no data streams (the open-source build of Elasticsearch 7?): "
                "%s is written as an ordinary index",
                self.client_options.urls[0],
                name,
            )
            self.sink.events["data_streams_unavailable"] += 1
            outcome = await self.client.put_template(template_name, template_body(pattern, data_stream=False))
        if outcome.status in (200, 201):
            self.client.templates.add(name)
            self.sink.events["templates_installed"] += 1
            return True
        log.warning("elasticsearch: cannot install the index template for %s: %s", name, outcome.reason)
        if outcome.permanent:
            # Refused for good (say, another template with the same priority overlaps):
            # ship without it rather than hold every line back.
            self.client.templates.add(name)
            return True
        return False

    async def aclose(self) -> None:
        return None

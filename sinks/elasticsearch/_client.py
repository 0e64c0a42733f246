"""The thin trio shell: bulk and template requests through ``elastic_transport``.

``AsyncTransport`` with ``node_class="httpxasync"`` runs under trio (since
elastic-transport 9.2). ``max_retries=0``: a failure comes back at once and
the pipeline decides when to retry, sleeping with trio (the transport's own
backoff sleeps with asyncio). No product check and plain media types, which
Elasticsearch 7-9 and OpenSearch 1-3 all accept. Every answer becomes an
``Outcome``; nothing here raises for a destination failure.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from elastic_transport import AsyncTransport, HttpxAsyncHttpNode, NodeConfig, TransportError
from elastic_transport._serializer import NdjsonSerializer, OrjsonSerializer
from zlib_ng import zlib_ng

from logdriver.config import CredentialsInValue, client_tls_context
from logdriver.replies import BoundedTransport


@dataclass(frozen=True, slots=True)
class NodeUrl:
    scheme: str
    host: str
    port: int
    path_prefix: str = ""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path_prefix}"


MAX_NODES = 32  # seed nodes: each one is a connection pool


def parse_urls(text: str) -> tuple[NodeUrl, ...]:
    """``http(s)://host[:port][/prefix]``, comma-separated; ValueError if one is not."""
    urls = []
    for part in (p.strip() for p in text.split(",")):
        url = urlsplit(part if "://" in part else "http://" + part)
        if url.username is not None or url.password is not None:
            raise CredentialsInValue(
                f"{url.scheme}://***@{url.hostname}",
                "node URLs without user:password: set es-username, and LOGDRIVER_ES_PASSWORD plugin-wide",
            )
        if url.scheme not in ("http", "https") or not url.hostname or url.query:
            raise ValueError(f"not an http(s) node URL without credentials: {part!r}")
        port = url.port or (443 if url.scheme == "https" else 9200)
        urls.append(NodeUrl(url.scheme, url.hostname, port, url.path.rstrip("/")))
    if not urls:
        raise ValueError("no URL")
    if len(urls) > MAX_NODES:
        raise ValueError(f"{len(urls)} URLs, more than {MAX_NODES}")
    return tuple(urls)


class _RawNdjson(NdjsonSerializer):
    """Sends our bytes as they are: the stock serializer appends a newline to a body
    that does not end with one, which corrupts a gzip body."""

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        return super().dumps(data)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    urls: tuple[NodeUrl, ...]
    compress: bool
    request_timeout: float
    username: str = ""
    password: str = ""
    api_key: str = ""
    bearer_token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True

    def auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"authorization": f"ApiKey {self.api_key}"}
        if self.bearer_token:
            return {"authorization": f"Bearer {self.bearer_token}"}
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"authorization": f"Basic {token}"}
        return {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """``status`` 0 means no HTTP answer (connection failure, timeout)."""

    status: int
    body: Any
    reason: str
    permanent: bool = False  # retrying the same request cannot help


_GZIP_WBITS = 31  # zlib's way of asking for a gzip member

# 4xx answers that a later attempt may not get: auth (fixable without losing lines),
# timeouts, throttling, and 413 (the caller splits the batch).
_TRANSIENT_4XX = frozenset({401, 403, 408, 409, 413, 429})


def _error_summary(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return f"{error.get('type', '')}: {error.get('reason', '')}"[:500]
        return str(error)[:500]
    if isinstance(body, bytes | str):
        return (body.decode(errors="replace") if isinstance(body, bytes) else body)[:500]
    return ""


# Bytes of a reply, raw and decoded. A bulk reply lists only the failed items
# (filter_path), a few hundred bytes each: a whole refused batch fits many times over.
MAX_REPLY = 16 << 20


class BoundedNode(HttpxAsyncHttpNode):
    """The transport's httpx node, its replies read through ``BoundedTransport``: the node
    itself reads a reply whole and lets httpx inflate any encoding, so a destination's
    compression bomb would be decoded entirely in memory. Over the bound, the request
    fails (a ``ConnectionError`` naming it) and the pipeline retries it."""

    def __init__(self, config: NodeConfig) -> None:
        super().__init__(config)
        # The node builds its client (TLS, limits) itself; only its transport is wrapped.
        inner: httpx.AsyncBaseTransport = self.client._transport
        self.client._transport = BoundedTransport(inner, MAX_REPLY)


class BulkClient:
    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.templates: set[str] = set()  # index templates installed through this client
        headers = options.auth_headers()
        tls = None
        if any(url.scheme == "https" for url in options.urls):
            tls = client_tls_context(
                options.ca_file, options.cert_file, options.key_file, options.verify, prefix="es-tls-"
            )
        nodes = [
            NodeConfig(
                url.scheme,
                url.host,
                url.port,
                path_prefix=url.path_prefix,
                http_compress=False,  # done here, with zlib-ng at level 1: ~10x less CPU than the transport's
                headers=headers,
                request_timeout=options.request_timeout,
                # One context per set of files, shared (logdriver.config.tls): the transport
                # would load the system's CAs again for every node of every destination.
                ssl_context=tls if url.scheme == "https" else None,
                verify_certs=options.verify,
            )
            for url in options.urls
        ]
        self.transport = AsyncTransport(
            nodes,
            node_class=BoundedNode,
            max_retries=0,
            retry_on_timeout=False,
            # orjson: a bulk answer carries one status per line, and the stdlib parser is slow at it.
            serializers={"application/json": OrjsonSerializer(), "application/x-ndjson": _RawNdjson()},
        )

    async def _request(self, method: str, target: str, body: bytes | dict[str, Any], content_type: str) -> Outcome:
        headers = {"content-type": content_type, "accept": "application/json"}
        if self.options.compress and isinstance(body, bytes):
            body = zlib_ng.compress(body, 1, _GZIP_WBITS)
            headers["content-encoding"] = "gzip"
        try:
            meta, response = await self.transport.perform_request(
                method,
                target,
                body=body,
                headers=headers,
                request_timeout=self.options.request_timeout,
            )
        except TransportError as exc:
            # The message names the node but never carries the credentials (they are headers).
            return Outcome(0, None, f"{type(exc).__name__}: {exc.message}")
        status = meta.status
        if 200 <= status < 300:
            return Outcome(status, response, "")
        permanent = 400 <= status < 500 and status not in _TRANSIENT_4XX
        return Outcome(status, response, f"HTTP {status} {_error_summary(response)}".strip(), permanent)

    async def bulk(self, ndjson: bytes, filter_path: str) -> Outcome:
        return await self._request("POST", f"/_bulk?filter_path={filter_path}", ndjson, "application/x-ndjson")

    async def put_template(self, name: str, body: dict[str, Any]) -> Outcome:
        # Quoted, though the name is checked: nothing a log-opt holds may reach another API.
        return await self._request("PUT", f"/_index_template/{quote(name, safe='')}", body, "application/json")

    async def aclose(self) -> None:
        await self.transport.close()


def lacks_data_streams(outcome: Outcome) -> bool:
    """A data-stream template refused by a server that does not know the setting at all."""
    return outcome.status == 400 and "unknown field [data_stream]" in str(outcome.body)


def template_body(pattern: str, data_stream: bool) -> dict[str, Any]:
    """A composable index template with mappings for logdriver's fields; works on
    Elasticsearch >= 7.8 and OpenSearch (no ES-only types such as match_only_text)."""
    keyword = {"type": "keyword"}
    body: dict[str, Any] = {
        "index_patterns": [pattern],
        "priority": 200,
        "_meta": {"managed_by": "logdriver"},
        "template": {
            "mappings": {
                "dynamic_templates": [
                    {"labels": {"path_match": "labels.*", "match_mapping_type": "string", "mapping": keyword}},
                    {
                        "container_labels": {
                            "path_match": "container.labels.*",
                            "match_mapping_type": "string",
                            "mapping": keyword,
                        }
                    },
                ],
                "properties": {
                    "@timestamp": {"type": "date_nanos"},
                    "message": {"type": "text"},
                    "stream": keyword,
                    "tags": keyword,
                    "host": {"properties": {"name": keyword}},
                    "container": {
                        "properties": {
                            "id": keyword,
                            "name": keyword,
                            "runtime": keyword,
                            "image": {"properties": {"name": keyword}},
                            "labels": {"type": "object"},
                        }
                    },
                    "partial": {
                        "properties": {"id": keyword, "ordinal": {"type": "integer"}, "last": {"type": "boolean"}}
                    },
                    "data_stream": {"properties": {"type": keyword, "dataset": keyword, "namespace": keyword}},
                    "labels": {"type": "object"},
                },
            }
        },
    }
    if data_stream:
        body["data_stream"] = {}
    return body

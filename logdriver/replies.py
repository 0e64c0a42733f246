"""Bounded reading of a destination's HTTP replies, for the sinks that speak HTTP.

A destination a container names is not trusted: its reply may be a compression bomb
(1,827 bytes of ``Content-Encoding: gzip, gzip`` inflate to 1 GiB) or simply endless.
``ReplyDecoder`` is the sans-IO core: it takes the raw bytes as they arrive, refuses
stacked or unknown encodings, and inflates with a bounded decompressor, so that neither
the raw nor the decoded reply ever holds more than ``max_bytes``.
``BoundedTransport`` is the httpx shell around any transport: the response the client
sees is already decoded, whole and within the bound, or the request failed with
``ReplyRefused`` (an ``httpx.HTTPError``, so every sink's retry path takes it).
"""

from __future__ import annotations

import datetime
import email.utils
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import trio

from logdriver.config.tls import TlsSettings

__all__ = [
    "BoundedTransport",
    "HttpClient",
    "Reply",
    "ReplyDecoder",
    "ReplyRefused",
    "read_reply",
    "retry_after",
]

# wbits for zlib: gzip and zlib framing, told apart by their header (raw deflate is rare
# and ambiguous; the servers logdriver talks to send gzip).
_WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}


class ReplyRefused(httpx.DecodingError):
    """The destination's fault: its reply is over the sink's bound, or encoded in a way
    logdriver does not decode (stacked encodings). The request counts as failed."""


class ReplyDecoder:
    """One reply's body: ``feed`` raw bytes, then ``finish`` for the decoded body."""

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        codings = [part.strip().lower() for part in content_encoding.split(",") if part.strip()]
        codings = [coding for coding in codings if coding != "identity"]
        if len(codings) > 1:
            raise ReplyRefused(f"reply refused: stacked encodings ({content_encoding[:100]!r})")
        if codings and codings[0] not in _WBITS:
            raise ReplyRefused(f"reply refused: unknown encoding {codings[0][:50]!r}")
        self.max_bytes = max_bytes
        self.raw_bytes = 0
        self._inflate = zlib.decompressobj(_WBITS[codings[0]]) if codings else None
        self._body = bytearray()

    def feed(self, raw: bytes) -> None:
        self.raw_bytes += len(raw)
        if self.raw_bytes > self.max_bytes:
            raise self._too_large()
        if self._inflate is None:
            self._body += raw
            return
        # max_length bounds what one call inflates: a bomb never exists decoded in memory.
        data = self._inflate.unconsumed_tail + raw
        while data:
            room = self.max_bytes - len(self._body)
            try:
                self._body += self._inflate.decompress(data, room + 1)
            except zlib.error as exc:
                raise ReplyRefused(f"reply refused: undecodable body ({exc})") from None
            if len(self._body) > self.max_bytes:
                raise self._too_large()
            data = self._inflate.unconsumed_tail
            if self._inflate.eof:
                return

    def finish(self) -> bytes:
        return bytes(self._body)

    def _too_large(self) -> ReplyRefused:
        return ReplyRefused(f"reply refused: over {self.max_bytes} bytes")


async def read_reply(response: httpx.Response, decoder: ReplyDecoder) -> bytes:
    """Feed ``decoder`` the response's raw bytes; its body, or ``ReplyRefused``."""
    chunks = response.stream.__aiter__()  # type: ignore[union-attr]
    try:
        async for raw in chunks:
            decoder.feed(raw)
    finally:
        # The stream's generator is closed here, not by the garbage collector: a reply
        # read only in part is a connection httpx must close at once.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return decoder.finish()


class BoundedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose replies are read whole through ``ReplyDecoder``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = max_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        try:
            decoder = ReplyDecoder(response.headers.get("content-encoding", ""), self.max_bytes)
            body = await read_reply(response, decoder)
        finally:
            await response.aclose()
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=body,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 3600))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.datetime.now(datetime.UTC)
    return min(max((when - now).total_seconds(), 0.0), 3600.0)


@dataclass(frozen=True, slots=True)
class Reply:
    """A destination's answer, its body read within the client's bound (what was read when
    it was over the bound or in an encoding not decoded: the status decides)."""

    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


class HttpClient:
    """The HTTP client group of a sink that posts to a destination (the Collector's
    ``confighttp``): a connection pool of ``connections``, TLS from its ``TlsSettings``,
    redirects never followed, a deadline on each whole exchange, replies read within
    ``max_reply`` bytes raw and decoded. One per destination, opened and closed by the
    plugin (``Sink.open_client``)."""

    def __init__(
        self,
        url: str,
        tls: TlsSettings,
        deadline: float,
        max_reply: int,
        *,
        connections: int = 4,
        proxy: str | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.deadline = deadline
        self.max_reply = max_reply
        verify: Any = tls.context() if url.startswith("https:") else True
        self.extensions = {"sni_hostname": tls.server_name} if tls.server_name else {}
        self.client = httpx.AsyncClient(
            timeout=deadline,
            verify=verify,
            follow_redirects=False,
            proxy=proxy or None,
            auth=auth,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=max(1, connections // 2)),
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """One POST and its reply within the deadline: ``trio.TooSlowError`` past it, an
        ``httpx.HTTPError`` for a connection or protocol failure."""
        # The deadline bounds the whole exchange: httpx's own timeout bounds each read,
        # which a reply dripping a byte at a time never trips.
        with trio.fail_after(self.deadline):
            async with self.client.stream(
                "POST", url, content=body, headers=dict(headers), extensions=self.extensions
            ) as response:
                lowered = {k.lower(): v for k, v in response.headers.items()}
                return Reply(response.status_code, lowered, await self._body(response, lowered))

    async def _body(self, response: httpx.Response, headers: Mapping[str, str]) -> bytes:
        try:
            decoder = ReplyDecoder(headers.get("content-encoding", ""), self.max_reply)
        except ReplyRefused:
            return b""
        try:
            return await read_reply(response, decoder)
        except ReplyRefused:
            return decoder.finish()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.client.aclose()

"""The thin trio shell around the forward protocol: one connection to one server.

Opening a connection does TCP, unix or TLS, then the HELO/PING/PONG handshake
when a shared key is configured. ``send`` writes one or more messages and waits
for the ack of each chunk id they carry. Every failure raises
``ForwardFailure`` with a reason fit for the log; the caller drops the
connection and lets the pipeline retry the batch.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from ._forward import Ack, ForwardProtocolError, Helo, Pong, Reply, ReplyReader, check_pong, ping
from ._servers import Server

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)


class ForwardFailure(Exception):
    """Sending to one server failed; ``after_send`` when the server may have the data."""

    def __init__(self, reason: str, after_send: bool = False) -> None:
        super().__init__(reason)
        self.after_send = after_send


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    connect_timeout: float
    write_timeout: float
    ack_timeout: float
    shared_key: str = ""
    username: str = ""
    password: str = ""
    hostname: str = ""
    tls_context: ssl.SSLContext | None = None
    tls_server_name: str = ""


async def _open_stream(server: Server, options: ConnectOptions) -> trio.abc.Stream:
    if server.scheme == "unix":
        return await trio.open_unix_socket(server.host)
    tcp = await trio.open_tcp_stream(server.host, server.port)
    # Notice a vanished peer on an idle connection instead of at the next ack timeout.
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if server.scheme != "tls":
        return tcp
    assert options.tls_context is not None, "tls addresses need a TLS context"
    stream = trio.SSLStream(tcp, options.tls_context, server_hostname=options.tls_server_name or server.host)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


def _reason(exc: BaseException) -> str:
    """The message of ``exc`` or of what caused it (trio wraps SSL errors)."""
    return str(exc) or str(exc.__cause__ or "") or type(exc).__name__


class ForwardConnection:
    def __init__(self, server: Server, stream: trio.abc.Stream) -> None:
        self.server = server
        self._stream = stream
        self._reader = ReplyReader()
        self._pending: list[Reply] = []
        self.keepalive = True
        self.used = False

    @classmethod
    async def open(cls, server: Server, options: ConnectOptions) -> ForwardConnection:
        try:
            with trio.fail_after(options.connect_timeout):
                connection = cls(server, await _open_stream(server, options))
        except trio.TooSlowError:
            raise ForwardFailure(f"{server}: no connection within {options.connect_timeout:g}s") from None
        except _NETWORK_ERRORS as exc:
            raise ForwardFailure(f"{server}: cannot connect: {_reason(exc)}") from None
        if options.shared_key:
            try:
                with trio.fail_after(options.connect_timeout):
                    await connection._handshake(options)
            except BaseException:
                await connection.aclose()
                raise
        return connection

    async def _handshake(self, options: ConnectOptions) -> None:
        try:
            helo = await self._next_reply()
            if not isinstance(helo, Helo):
                raise ForwardFailure(f"{self.server}: expected HELO, got {helo!r:.60}")
            message, salt = ping(helo, options.hostname, options.shared_key, options.username, options.password)
            await self._stream.send_all(message)
            pong = await self._next_reply()
            if not isinstance(pong, Pong):
                raise ForwardFailure(f"{self.server}: expected PONG, got {pong!r:.60}")
            check_pong(pong, helo, salt, options.shared_key, options.hostname)
        except trio.TooSlowError:
            raise ForwardFailure(
                f"{self.server}: no handshake within {options.connect_timeout:g}s "
                "(is <security> configured on the server?)"
            ) from None
        except ForwardProtocolError as exc:
            raise ForwardFailure(f"{self.server}: handshake failed: {exc}") from None
        except _NETWORK_ERRORS as exc:
            raise ForwardFailure(f"{self.server}: connection lost during the handshake: {_reason(exc)}") from None
        self.keepalive = helo.keepalive

    async def _next_reply(self) -> Reply:
        while not self._pending:
            data = await self._stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("closed by the server")
            self._pending.extend(self._reader.receive_data(bytes(data)))
        return self._pending.pop(0)

    async def send(self, message: bytes, chunks: Sequence[str], options: ConnectOptions) -> None:
        """Write ``message`` (one or more forward messages); return once the server acked every chunk id."""
        self.used = True
        try:
            with trio.fail_after(options.write_timeout):
                await self._stream.send_all(message)
        except trio.TooSlowError:
            raise ForwardFailure(f"{self.server}: write took over {options.write_timeout:g}s", True) from None
        except _NETWORK_ERRORS as exc:
            raise ForwardFailure(f"{self.server}: write failed: {_reason(exc)}", True) from None
        waiting = set(chunks)
        try:
            with trio.fail_after(options.ack_timeout):
                while waiting:
                    reply = await self._next_reply()
                    if isinstance(reply, Helo):
                        raise ForwardFailure(
                            f"{self.server}: the server wants a handshake: set fluentd-shared-key", True
                        )
                    if not isinstance(reply, Ack) or reply.chunk not in waiting:
                        # fluentd #4057: an ack for another chunk means the stream is out of step.
                        raise ForwardFailure(f"{self.server}: ack for the wrong chunk: {reply!r:.80}", True)
                    waiting.discard(reply.chunk)
        except trio.TooSlowError:
            raise ForwardFailure(f"{self.server}: no ack within {options.ack_timeout:g}s", True) from None
        except ForwardProtocolError as exc:
            raise ForwardFailure(f"{self.server}: bad reply: {exc}", True) from None
        except _NETWORK_ERRORS as exc:
            raise ForwardFailure(f"{self.server}: connection lost before the ack: {_reason(exc)}", True) from None

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self._stream)

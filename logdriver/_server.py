"""The plugin's HTTP server: h11 over a trio unix-socket listener.

It knows HTTP and the RPC table in ``_rpc``, nothing about pipelines: every
decoded command goes to a ``Handler``. Requests are small JSON bodies except
ReadLogs, whose response is a stream of frames sent with chunked encoding as
the handler produces them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Final, Protocol

import h11
import trio

from . import _rpc
from ._exceptions import LogDriverError, RpcError

log = logging.getLogger("logdriver.server")

# Info carries the container's whole environment; 8 MiB is far beyond any real one.
MAX_REQUEST_BODY: Final = 8 << 20
_RESPONSE_HEADERS: Final = [("Content-Type", "application/vnd.docker.plugins.v1.2+json")]


class Handler(Protocol):
    async def start_logging(self, command: _rpc.StartLogging) -> None: ...

    async def stop_logging(self, command: _rpc.StopLogging) -> None: ...

    def read_logs(self, command: _rpc.ReadLogs) -> AsyncIterator[bytes]: ...


async def serve_unix(
    path: str,
    handler: Handler,
    *,
    task_status: trio.TaskStatus[trio.SocketListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``path`` (replacing a stale socket) and serve until cancelled."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(128)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(listener)

            async def serve_one(stream: trio.SocketStream) -> None:
                await _serve_connection(stream, handler)

            await trio.serve_listeners(serve_one, [listener], handler_nursery=nursery)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _serve_connection(stream: trio.abc.Stream, handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 << 10)
    try:
        while True:
            request = await next_request(stream, conn)
            if request is None:
                return
            path, body = request
            await _dispatch(stream, conn, handler, path, body)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the daemon went away; nothing to answer
    except h11.RemoteProtocolError as exc:
        log.warning("malformed HTTP from the daemon socket: %s", exc)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await _send(stream, conn, exc.error_status_hint, _rpc.error_body(str(exc)))
    finally:
        await stream.aclose()


async def next_request(stream: trio.abc.Stream, conn: h11.Connection) -> tuple[str, bytes] | None:
    path = ""
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            path = event.target.decode("ascii", "replace")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_REQUEST_BODY:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return path, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


async def _send(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: bytes) -> None:
    headers = [*_RESPONSE_HEADERS, ("Content-Length", str(len(body)))]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def _dispatch(stream: trio.abc.Stream, conn: h11.Connection, handler: Handler, path: str, body: bytes) -> None:
    try:
        command = _rpc.parse_request(path, body)
    except KeyError:
        await _send(stream, conn, 404, _rpc.error_body(f"unknown plugin method {path}"))
        return
    except RpcError as exc:
        log.warning("rejected %s: %s", path, exc)
        # A StopLogging error would leak the daemon's FIFO and plugin refcount: always succeed.
        status_body = _rpc.EMPTY_RESPONSE if path == "/LogDriver.StopLogging" else _rpc.error_body(str(exc))
        status = 500 if path == "/LogDriver.ReadLogs" else 200
        await _send(stream, conn, status, status_body)
        return
    if isinstance(command, _rpc.Activate):
        await _send(stream, conn, 200, _rpc.ACTIVATE_RESPONSE)
    elif isinstance(command, _rpc.Capabilities):
        await _send(stream, conn, 200, _rpc.CAPABILITIES_RESPONSE)
    elif isinstance(command, _rpc.StartLogging):
        try:
            await handler.start_logging(command)
        except LogDriverError as exc:
            await _send(stream, conn, 200, _rpc.error_body(str(exc)))
            return
        await _send(stream, conn, 200, _rpc.EMPTY_RESPONSE)
    elif isinstance(command, _rpc.StopLogging):
        try:
            await handler.stop_logging(command)
        except Exception:
            log.exception("StopLogging for %s failed; answering {} so the daemon can release the FIFO", command.file)
        await _send(stream, conn, 200, _rpc.EMPTY_RESPONSE)
    else:
        await _stream_logs(stream, conn, handler.read_logs(command))


async def _stream_logs(stream: trio.abc.Stream, conn: h11.Connection, frames: AsyncIterator[bytes]) -> None:
    # No Content-Length: h11 uses chunked encoding, which the daemon reads fine.
    await stream.send_all(conn.send(h11.Response(status_code=200, headers=list(_RESPONSE_HEADERS))) or b"")
    try:
        async for data in frames:
            await stream.send_all(conn.send(h11.Data(data=data)) or b"")
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                await aclose()
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

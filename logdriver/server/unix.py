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

from logdriver._exceptions import LogDriverError, RpcError
from logdriver.server import rpc
from logdriver.server.http import Limits, Request, guarded, response_bytes, serve_h11

log = logging.getLogger("logdriver.server")

# Only dockerd connects here, but every ``docker logs -f`` holds a connection.
PLUGIN_SOCKET_LIMITS: Final = Limits(max_connections=1024)
_RESPONSE_HEADERS: Final = [("Content-Type", "application/vnd.docker.plugins.v1.2+json")]


class Handler(Protocol):
    async def start_logging(self, command: rpc.StartLogging) -> None: ...

    async def stop_logging(self, command: rpc.StopLogging) -> None: ...

    def read_logs(self, command: rpc.ReadLogs) -> AsyncIterator[bytes]: ...


async def serve_unix(
    path: str,
    handler: Handler,
    *,
    limits: Limits = PLUGIN_SOCKET_LIMITS,
    task_status: trio.TaskStatus[trio.SocketListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``path`` (replacing a stale socket) and serve until cancelled.

    Error handling: nothing a request does ends the server. A handler that
    raises is answered with ``{"Err": ...}`` (``{}`` for StopLogging) and logged.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, 0o600)  # only root (dockerd) may drive the plugin
    sock.listen(128)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(listener)

            async def serve_one(stream: trio.abc.Stream) -> None:
                async def respond(stream: trio.abc.Stream, conn: h11.Connection, request: Request) -> None:
                    await _dispatch(stream, conn, handler, request.target, request.body)

                await serve_h11("plugin socket", stream, limits, respond)

            await trio.serve_listeners(guarded("plugin socket", serve_one, limits), [listener], handler_nursery=nursery)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _send(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: bytes) -> None:
    await stream.send_all(response_bytes(conn, status, _RESPONSE_HEADERS, body))


async def _dispatch(stream: trio.abc.Stream, conn: h11.Connection, handler: Handler, path: str, body: bytes) -> None:
    try:
        command = rpc.parse_request(path, body)
    except KeyError:
        await _send(stream, conn, 404, rpc.error_body(f"unknown plugin method {path[:200]}"))
        return
    except RpcError as exc:
        log.warning("rejected %s: %s", path, exc)
        # A StopLogging error would leak the daemon's FIFO and plugin refcount: always succeed.
        status_body = rpc.EMPTY_RESPONSE if path == "/LogDriver.StopLogging" else rpc.error_body(str(exc))
        status = 500 if path == "/LogDriver.ReadLogs" else 200
        await _send(stream, conn, status, status_body)
        return
    if isinstance(command, rpc.Activate):
        await _send(stream, conn, 200, rpc.ACTIVATE_RESPONSE)
    elif isinstance(command, rpc.Capabilities):
        await _send(stream, conn, 200, rpc.CAPABILITIES_RESPONSE)
    elif isinstance(command, rpc.StartLogging):
        try:
            await handler.start_logging(command)
        except LogDriverError as exc:
            log.warning("StartLogging for %s refused: %s", command.info.get("ContainerID", "?")[:12], exc)
            await _send(stream, conn, 200, rpc.error_body(str(exc)))
            return
        except Exception as exc:
            # A bug of ours must fail this container's start, not the plugin.
            log.exception("StartLogging for %s failed", command.info.get("ContainerID", "?")[:12])
            await _send(stream, conn, 200, rpc.error_body(f"logdriver: internal error: {type(exc).__name__}"))
            return
        await _send(stream, conn, 200, rpc.EMPTY_RESPONSE)
    elif isinstance(command, rpc.StopLogging):
        try:
            await handler.stop_logging(command)
        except Exception:
            log.exception("StopLogging for %s failed; answering {} so the daemon can release the FIFO", command.file)
        await _send(stream, conn, 200, rpc.EMPTY_RESPONSE)
    else:
        await _stream_logs(stream, conn, handler.read_logs(command))


async def _stream_logs(stream: trio.abc.Stream, conn: h11.Connection, frames: AsyncIterator[bytes]) -> None:
    # No Content-Length: h11 uses chunked encoding, which the daemon reads fine.
    await stream.send_all(conn.send(h11.Response(status_code=200, headers=list(_RESPONSE_HEADERS))) or b"")
    try:
        async for data in frames:
            await stream.send_all(conn.send(h11.Data(data=data)) or b"")
    except Exception:
        # Headers are out: the only way left to tell the daemon is to cut the stream short.
        log.exception("ReadLogs failed mid-stream; closing it")
        raise trio.ClosedResourceError() from None
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                await aclose()
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

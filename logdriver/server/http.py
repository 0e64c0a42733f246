"""HTTP/1.1 plumbing shared by the plugin socket and the metrics port (h11 on trio).

Both listen where a clumsy or hostile local client can reach them, so every
connection is bounded: a request must arrive whole within ``request_timeout``
once its first byte is in, a kept-alive connection is closed after
``idle_timeout`` without a request, a body is capped, and a listener serves at
most ``max_connections`` at once (the next ones are closed at once, so idle
clients cannot exhaust the descriptors StartLogging needs). Nothing a client
does raises out of a connection handler: errors are answered when the
connection can still carry an answer, and logged.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import h11
import trio

log = logging.getLogger("logdriver.http")

READ_SIZE: Final = 65536


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-listener bounds; see the module docstring."""

    max_connections: int = 256
    request_timeout: float = 10.0
    idle_timeout: float = 120.0
    max_body: int = 8 << 20
    max_head: int = 64 << 10
    # At the cap: close the oldest connection for the new one (a port of short requests),
    # or refuse the new one (the plugin socket: its long-lived ReadLogs followers stay).
    evict_oldest: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    body: bytes


class RequestTimeout(Exception):
    """The client was too slow to send a whole request (its fault)."""


async def receive_request(stream: trio.abc.Stream, conn: h11.Connection, limits: Limits) -> Request | None:
    """The next whole request, or None when the client closed or idled out between requests.

    Raises ``h11.RemoteProtocolError`` for malformed or oversized input and
    ``RequestTimeout`` for a request that started but did not finish in time.
    """
    method = target = ""
    body = bytearray()
    deadline = math.inf
    with trio.move_on_after(limits.idle_timeout) as idle:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_at(deadline) if deadline < math.inf else contextlib.nullcontext():
                    data = await stream.receive_some(READ_SIZE)
                if deadline == math.inf:
                    idle.deadline = math.inf  # a request has begun: the request timeout applies now
                    deadline = trio.current_time() + limits.request_timeout
                conn.receive_data(bytes(data))
                continue
            if isinstance(event, h11.Request):
                method = event.method.decode("ascii", "replace")
                target = event.target.decode("ascii", "replace")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.max_body:
                    raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
            elif isinstance(event, h11.EndOfMessage):
                return Request(method, target, bytes(body))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
    return None  # idle too long


def response_bytes(
    conn: h11.Connection, status: int, headers: list[tuple[str, str]], body: bytes, *, head_only: bool = False
) -> bytes:
    """One whole response; for a HEAD request the body is left out (its length still announced)."""
    data = conn.send(h11.Response(status_code=status, headers=[*headers, ("Content-Length", str(len(body)))])) or b""
    if not head_only:  # h11 frames a response to HEAD as bodiless: Data would be a protocol error
        data += conn.send(h11.Data(data=body)) or b""
    return data + (conn.send(h11.EndOfMessage()) or b"")


async def send_quietly(stream: trio.abc.Stream, data: bytes) -> bool:
    """Send, treating a departed client as a normal end (returns False)."""
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


# A client can repeat a fault as fast as it can connect: each kind is logged at most once
# per LOG_INTERVAL per listener, with the count of those not logged.
LOG_INTERVAL: Final = 10.0
_last_logged: dict[tuple[str, str], float] = {}
_not_logged: dict[tuple[str, str], int] = {}


def _throttle(name: str, kind: str) -> int | None:
    """None: do not log now; otherwise how many of this kind went unlogged since the last line."""
    key, now = (name, kind), trio.current_time()
    if now - _last_logged.get(key, -math.inf) < LOG_INTERVAL:
        _not_logged[key] = _not_logged.get(key, 0) + 1
        return None
    _last_logged[key] = now
    return _not_logged.pop(key, 0)


def _also(skipped: int) -> str:
    return f" ({skipped} more since the last such line)" if skipped else ""


ConnectionHandler = Callable[[trio.abc.Stream], Awaitable[None]]


def guarded(name: str, handler: ConnectionHandler, limits: Limits) -> ConnectionHandler:
    """Wrap a connection handler: a connection cap, and no exception escapes it.

    The listener's nursery must never see an exception from one client: that
    would cancel the server, and with it every container's logging.
    """
    active: dict[object, trio.CancelScope] = {}  # oldest first

    async def serve(stream: trio.abc.Stream) -> None:
        if len(active) >= limits.max_connections:
            if limits.evict_oldest:
                active.pop(next(iter(active))).cancel()
                if (skipped := _throttle(name, "evicted")) is not None:
                    log.warning("%s: %d connections open, closed the oldest%s", name, len(active) + 1, _also(skipped))
            else:
                if (skipped := _throttle(name, "refused")) is not None:
                    log.warning("%s: %d connections open, refusing another%s", name, len(active), _also(skipped))
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                return
        key = object()
        try:
            with trio.CancelScope() as active[key]:
                await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except RequestTimeout:
            if (skipped := _throttle(name, "stalled")) is not None:
                log.info("%s: a client sent half a request and stalled; closed%s", name, _also(skipped))
        except Exception:
            if (skipped := _throttle(name, "failed")) is not None:
                log.exception("%s: connection failed; the server carries on%s", name, _also(skipped))
        finally:
            active.pop(key, None)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    return serve


async def serve_h11(
    name: str,
    stream: trio.abc.Stream,
    limits: Limits,
    respond: Callable[[trio.abc.Stream, h11.Connection, Request], Awaitable[None]],
) -> None:
    """Serve requests on one connection until the client closes, errs or idles out."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
    while True:
        try:
            request = await receive_request(stream, conn, limits)
        except trio.TooSlowError:
            raise RequestTimeout() from None
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                if (skipped := _throttle(name, "malformed")) is not None:
                    log.info(
                        "%s: malformed request (%s); answered %d%s", name, exc, exc.error_status_hint, _also(skipped)
                    )
                body = f"malformed request: {exc}\n".encode()
                with trio.move_on_after(limits.request_timeout):
                    await send_quietly(stream, response_bytes(conn, exc.error_status_hint, [], body))
            return
        if request is None:
            return
        await respond(stream, conn, request)
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        if conn.our_state is not h11.DONE:
            return
        conn.start_next_cycle()

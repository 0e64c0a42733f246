"""Each destination's client (a connection pool, a producer), owned by the core.

A sink says what its client is (``Sink.open_client``) and which containers share one
(``Sink.destination``); this registry opens the client when the first pipeline of a
(sink, destination) opens and closes it when the last one finishes, so a sink keeps no
registry and no reference count of its own. A stopped container's pipeline holds its
client while it drains; the client closes when that drain ends.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from logdriver.abc import Sink

log = logging.getLogger("logdriver.delivery")


@dataclass(slots=True)
class _Held:
    client: Any
    users: int


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    open: Mapping[str, int]  # per sink: clients open now
    opened: int  # clients opened since the start, every sink
    closed: int


class Clients:
    """The open clients, by (sink name, destination), each with the count of its users."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, Hashable], _Held] = {}
        self.opened = 0
        self.closed = 0

    def acquire(self, sink: Sink, destination: Hashable) -> Any:
        """The destination's client, opened now if none is (``open_client`` may raise
        ``ConfigError``: nothing is held then)."""
        key = (sink.name, destination)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(sink.open_client(destination), 0)
            self.opened += 1
        held.users += 1
        return held.client

    def release(self, sink: Sink, destination: Hashable) -> Any | None:
        """One user fewer; the client to close when that was the last one (the caller closes it)."""
        key = (sink.name, destination)
        held = self._held.get(key)
        if held is None:
            return None
        held.users -= 1
        if held.users > 0:
            return None
        del self._held[key]
        self.closed += 1
        return held.client

    async def aclose_all(self) -> None:
        """Close every client (a plugin shutdown, a test's end)."""
        held, self._held = list(self._held.values()), {}
        for item in held:
            self.closed += 1
            await close_client(item.client)

    def statistics(self) -> ClientStatistics:
        open_by_sink: dict[str, int] = {}
        for sink, _ in self._held:
            open_by_sink[sink] = open_by_sink.get(sink, 0) + 1
        return ClientStatistics(open=open_by_sink, opened=self.opened, closed=self.closed)


async def close_client(client: Any) -> None:
    """Close a client whatever happens around it: its own failure is logged, not raised."""
    aclose = getattr(client, "aclose", None)
    if aclose is None:
        return
    with trio.CancelScope(shield=True):
        try:
            await aclose()
        except Exception:
            log.exception("a sink's client failed to close")

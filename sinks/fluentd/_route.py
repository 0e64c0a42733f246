"""One forward destination shared by every container that ships to it: the server
choice, the kept-alive connections and the failure log state.

Containers with the same addresses, balance and connection options share one
route, so a host with 200 containers holds one connection per server, and a
request carries every container's PackedForward message in one write, each
with its own chunk id, acknowledged one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, MutableMapping, Sequence

import trio

from ._connection import ConnectOptions, ForwardConnection, ForwardFailure
from ._servers import ServerChoice

log = logging.getLogger("logdriver.sinks.fluentd")


class ForwardRoute:
    def __init__(self, key: Hashable, choice: ServerChoice, connect: ConnectOptions, events: MutableMapping[str, int]):
        self.key = key
        self.choice = choice
        self.connect = connect
        self.events = events
        self._connections: dict[int, ForwardConnection] = {}
        self._failing: set[int] = set()

    async def send(self, message: bytes, chunks: Sequence[str], lines: int) -> bool:
        """Deliver ``message`` (carrying ``lines`` lines) to the first server that takes it."""
        for position, index in enumerate(self.choice.order(trio.current_time())):
            try:
                await self._send_to(index, message, chunks, lines)
            except ForwardFailure as exc:
                self.choice.failed(index, trio.current_time())
                if exc.after_send and chunks:
                    self.events["unacked_lines"] += lines
                if index not in self._failing:
                    self._failing.add(index)
                    log.warning("fluentd: %s; trying elsewhere or later", exc)
                continue
            self.choice.succeeded(index)
            if index in self._failing:
                self._failing.discard(index)
                log.warning("fluentd: %s is taking batches again", self.choice.servers[index])
            if position:
                self.events["failovers"] += 1
            return True
        return False

    async def _send_to(self, index: int, message: bytes, chunks: Sequence[str], lines: int) -> None:
        connection = self._connections.pop(index, None)
        # A kept-alive connection may have been closed by the server while idle:
        # on its failure, one more try on a fresh connection before calling the server down.
        for reused in (True, False) if connection is not None else (False,):
            if connection is None:
                connection = await self._open(index)
            try:
                await connection.send(message, chunks, self.connect)
            except BaseException as exc:  # also a cancelled flush: never leak the socket
                await connection.aclose()
                connection = None
                if reused and isinstance(exc, ForwardFailure):
                    if exc.after_send and chunks:
                        self.events["unacked_lines"] += lines
                    continue
                raise
            if connection.keepalive:
                self._connections[index] = connection
            else:
                await connection.aclose()
            return

    async def _open(self, index: int) -> ForwardConnection:
        try:
            connection = await ForwardConnection.open(self.choice.servers[index], self.connect)
        except ForwardFailure:
            self.events["connect_failures"] += 1
            raise
        self.events["connects"] += 1
        return connection

    async def aclose(self) -> None:
        for connection in self._connections.values():
            await connection.aclose()
        self._connections.clear()

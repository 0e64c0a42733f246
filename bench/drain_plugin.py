"""A calibration plugin for the benchmark: reads every FIFO and discards the bytes.

It uses logdriver's own socket server and FIFO reader, claims ReadLogs (so the
daemon keeps no dual-logging cache) and answers it with nothing. Its throughput
is the ceiling dockerd's per-line FIFO writes leave for any plugin on the host.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

import trio

from logdriver.reading.poller import FifoHub, open_fifo
from logdriver.server import rpc
from logdriver.server.unix import serve_unix


class _Discard:
    def __init__(self, hub: FifoHub, fd: int) -> None:
        self.hub = hub
        self.fd = fd
        self.key = hub.add(fd, self)

    def receive(self, data: bytes, eof: bool, errno: int) -> None:
        if eof or errno:
            self.hub.remove(self.key)
            os.close(self.fd)


class DrainHandler:
    def __init__(self, hub: FifoHub) -> None:
        self.hub = hub

    async def start_logging(self, command: rpc.StartLogging) -> None:
        fd, _ = open_fifo(command.file)
        _Discard(self.hub, fd)

    async def stop_logging(self, command: rpc.StopLogging) -> None:
        return None

    async def read_logs(self, command: rpc.ReadLogs) -> AsyncIterator[bytes]:
        for _ in ():
            yield b""


async def main(socket_path: str) -> None:
    hub = FifoHub(0.002)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        await nursery.start(serve_unix, socket_path, DrainHandler(hub))


if __name__ == "__main__":
    os.makedirs("/run/docker/plugins", exist_ok=True)
    trio.run(main, sys.argv[1])

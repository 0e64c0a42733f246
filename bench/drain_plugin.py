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

from logdriver import _rpc
from logdriver._fifo import FifoReader, open_fifo
from logdriver._server import serve_unix


class DrainHandler:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    async def start_logging(self, command: _rpc.StartLogging) -> None:
        fd, size = open_fifo(command.file)
        self.nursery.start_soon(self._drain, FifoReader(fd, size))

    @staticmethod
    async def _drain(reader: FifoReader) -> None:
        async with trio.open_nursery():
            while await reader.receive():
                pass
        await reader.aclose()

    async def stop_logging(self, command: _rpc.StopLogging) -> None:
        return None

    async def read_logs(self, command: _rpc.ReadLogs) -> AsyncIterator[bytes]:
        for _ in ():
            yield b""


async def main(socket_path: str) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_unix, socket_path, DrainHandler(nursery))


if __name__ == "__main__":
    os.makedirs("/run/docker/plugins", exist_ok=True)
    trio.run(main, sys.argv[1])

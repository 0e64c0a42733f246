"""Reading one container's FIFO with as few wake-ups as possible.

dockerd writes one frame per ``write()``; a reader that wakes for each one
spends as much CPU as the protobuf decode. So the pipe is enlarged with
``F_SETPIPE_SZ`` (1 MiB is the unprivileged maximum and dockerd's writes are
tiny), and after a read that did not fill the buffer the reader sleeps a
couple of milliseconds to let frames accumulate. The pause bounds added
latency at ``batch_wait`` and cannot block the container: the pipe it lets
fill is far larger than what arrives in that time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from typing import Final

import trio

from ._exceptions import LogDriverError

log = logging.getLogger("logdriver.fifo")

DEFAULT_PIPE_SIZE: Final = 1 << 20
DEFAULT_BATCH_WAIT: Final = 0.002


def open_fifo(path: str, pipe_size: int = DEFAULT_PIPE_SIZE) -> tuple[int, int]:
    """Open the daemon's FIFO read-only (never O_RDWR: we would never see EOF).

    Returns ``(fd, pipe_size_in_effect)``. The open cannot block: the daemon
    already holds a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise LogDriverError(f"cannot open log FIFO {path}: {exc.strerror}") from exc
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise LogDriverError(f"{path} is not a FIFO")
    size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    for wanted in (pipe_size, 1 << 20, 256 << 10):
        if wanted <= size:
            break
        try:
            size = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, wanted)
            break
        except OSError:
            continue
    return fd, size


class FifoReader:
    """Batched reads from an open FIFO fd, which it owns and closes."""

    def __init__(self, fd: int, read_size: int, batch_wait: float = DEFAULT_BATCH_WAIT) -> None:
        self._stream = trio.lowlevel.FdStream(fd)
        self._read_size = read_size
        self._batch_wait = batch_wait
        self._short = False

    async def receive(self) -> bytes:
        """What the pipe holds (up to ``read_size``); ``b""`` at EOF."""
        if self._short:
            await trio.sleep(self._batch_wait)
        data = await self._stream.receive_some(self._read_size)
        # A read that took half the pipe or more means we are behind: read again at once.
        self._short = len(data) < self._read_size // 2
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()

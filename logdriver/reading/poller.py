"""Reading every container's FIFO with as few wake-ups as possible.

dockerd writes one frame per ``write()``. One reader thread (``FifoPoller`` in
``native/src/poller.rs``) waits on every FIFO, lets them fill for ``interval``
between rounds and hands trio all of a round's bytes at once: ``FifoHub`` is
the trio side, one task for the whole host. The pipe is enlarged with
``F_SETPIPE_SZ`` (1 MiB is the unprivileged maximum), and the pause shrinks
when a FIFO is busy, so that none brings more than a quarter of its pipe per
round: the pause never blocks a container's writes.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import stat
from typing import Final, Protocol

import trio

from logdriver._exceptions import LogDriverError
from logdriver._native import FifoPoller

log = logging.getLogger("logdriver.fifo")

DEFAULT_PIPE_SIZE: Final = 1 << 20
# Read bytes held per FIFO until trio takes them; beyond it the FIFO waits (its pipe fills).
MAX_PENDING: Final = 4 << 20
# ... and for all FIFOs together: a fixed memory cost outside the memory budget, whatever
# the number of containers (40 writing flat out held 160 MiB, and as much again once taken).
MAX_PENDING_TOTAL: Final = 16 << 20


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


class Receiver(Protocol):
    """What the hub hands a round's bytes to: one per FIFO (``_container_log.FifoLog``)."""

    def receive(self, data: bytes, eof: bool, errno: int) -> None: ...


class FifoHub:
    """Run with ``await nursery.start(hub.run)``; ``add`` a FIFO, ``remove`` it before closing its fd."""

    def __init__(self, interval: float, fill: int = 256 << 10) -> None:
        self.poller = FifoPoller(interval, MAX_PENDING, MAX_PENDING_TOTAL, fill)
        self._receivers: dict[int, Receiver] = {}
        self._keys = itertools.count(1)
        self.rounds = 0  # wake-ups of the hub task

    def __len__(self) -> int:
        return len(self._receivers)

    def add(self, fd: int, receiver: Receiver) -> int:
        """Start reading ``fd``; returns its key."""
        key = next(self._keys)
        self.poller.add(key, fd)
        self._receivers[key] = receiver
        return key

    def remove(self, key: int) -> bytes:
        """Stop reading; returns bytes read and not handed over yet. The fd may be closed after."""
        self._receivers.pop(key, None)
        return bytes(self.poller.remove(key))

    def pause(self, key: int, paused: bool) -> None:
        self.poller.pause(key, paused)

    def ending(self, key: int) -> None:
        """StopLogging came: EOF follows at once; see it without the reader's pause."""
        self.poller.ending(key)

    def read_now(self, key: int) -> tuple[bytes, bool, int]:
        """What ``key``'s FIFO holds now, read on this thread: ``(bytes, eof, errno)``."""
        data, eof, errno = self.poller.read_now(key)
        return bytes(data), eof, errno

    def read_some(self, key: int, limit: int) -> tuple[bytes, bool, int]:
        """At most ``limit`` more bytes of a paused FIFO, read now; it stays paused."""
        data, eof, errno = self.poller.read_some(key, limit)
        return bytes(data), eof, errno

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(self.poller.ready_fd)
                self.rounds += 1
                for key, data, eof, errno in self.poller.take():
                    receiver = self._receivers.get(key)
                    if receiver is not None:
                        receiver.receive(data, eof, errno)
        finally:
            self.poller.close()

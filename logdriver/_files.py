"""Files holding container data or secrets: readable by root only.

The registry and spool ``info.json`` hold each container's environment and
secret log-opts (``fluentd-shared-key``); spools, the store and dead letters
hold log lines. Directories are 0700 and files 0600, whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from typing import Final

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600


def makedirs_private(path: str) -> None:
    """``os.makedirs`` whose every new directory, and ``path`` itself, is 0700."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)


def lock_exclusive(path: str) -> int | None:
    """Take an exclusive lock on ``path`` (created 0600) for as long as this process lives:
    the descriptor, or None if another process holds it. The kernel drops the lock when the
    holder exits, however it exits, so a crashed plugin never leaves a stale lock behind."""
    fd = open_private(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: str) -> str:
    """What the lock file at ``path`` says of its holder ("pid N"), or ""."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(64).strip()
    except OSError:
        return ""


def open_private(path: str, flags: int) -> int:
    """``os.open`` creating with 0600 (and tightening a file an older version left 0644)."""
    fd = os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_segment(path: str) -> tuple[int, int]:
    """Open a segment for appending, created 0600: its descriptor and size, or OSError
    with nothing left open (a rotation opens the next segment before closing the last)."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        return fd, os.fstat(fd).st_size
    except OSError:
        os.close(fd)
        raise


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` atomically with ``data`` (a crash leaves the old or the new file, never half)."""
    tmp = path + ".tmp"
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def private_key(path: str, size: int = 32) -> bytes:
    """The random key kept in ``path`` (0600), made the first time it is asked for."""
    try:
        with open(path, "rb") as kept:
            key = kept.read(size + 1)
        if len(key) == size:
            return key
    except FileNotFoundError:
        pass
    key = os.urandom(size)
    write_private(path, key)
    return key


def append_private(path: str, data: bytes) -> None:
    """Append ``data`` to ``path``, creating it 0600."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_whole(fd: int, data: bytes, size_before: int) -> None:
    """Append all of ``data`` to a file of ``size_before`` bytes, or none of it: after a
    short write and an error (a disk filling up) the file is cut back, so it never ends
    in half a record that would garble every record appended after it."""
    try:
        write_all(fd, data)
    except OSError:
        # The reader drops a torn record at the end; the error raised is what counts.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size_before)
        raise


def read_regular(path: str, limit: int, *, owner_only: bool = False) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, read without ever
    blocking: opened non-blocking, then checked with ``fstat`` (so a path swapped for a
    FIFO or a device between a check and the open cannot hold the event loop).
    ``owner_only``: not through a symlink, and it must belong to this process's user and be
    writable by it alone. Raises ``OSError`` (``FileNotFoundError`` when absent) or ``ValueError``."""
    nofollow = os.O_NOFOLLOW if owner_only else 0
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | nofollow | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        if owner_only and (status.st_uid != os.geteuid() or status.st_mode & 0o022):
            raise ValueError(f"must belong to uid {os.geteuid()} and be writable by it alone (chmod 600)")
        if status.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise ValueError(f"larger than {limit} bytes")
        return data
    finally:
        os.close(fd)

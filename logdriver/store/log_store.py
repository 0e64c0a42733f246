"""The ReadLogs store: every container's entries, on local disk, bounded.

Layout: ``<root>/<container-id>/<seq>.log`` segment files holding the FIFO's
frames exactly as the daemon wrote them (4-byte length + LogEntry). Appending
raw bytes costs one ``write`` per FIFO read, which is what keeps the store off
the throughput budget; decoding happens only when ``docker logs`` asks.

Bounds, all enforced on append:
- per container, ``max-size`` bytes per segment and ``max-file`` segments
  (json-file's log-opts; the oldest segment is deleted);
- across containers, ``store_max_bytes``: over it, the oldest segments of the
  whole store go first (down to 90 % of the cap) except each live writer's
  current segment.
Removed containers: see ``LogStore.collect_garbage``.

Writes are plain blocking ``os.write`` on the event loop: the target is the
page cache, and a thread hop per read batch would cost more than the write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio

from logdriver._files import makedirs_private, open_segment, write_whole
from logdriver._framing import HEADER
from logdriver._native import whole_frames

log = logging.getLogger("logdriver.store")

_SUFFIX = ".log"
_READ_CHUNK = 256 << 10  # decoded per event-loop turn by ReadLogs: a few milliseconds


def _segment_name(seq: int) -> str:
    return f"{seq:08d}{_SUFFIX}"


EVICT_LOG_INTERVAL = 60.0  # seconds between "store over its cap" warnings


@dataclass(slots=True)
class StoreStatistics:
    bytes: int = 0  # in the store now
    containers: int = 0
    bytes_written: int = 0
    segments_rotated: int = 0
    segments_evicted_by_cap: int = 0
    containers_collected: int = 0


@dataclass(slots=True)
class ContainerLog:
    """One container's segments and, while logging, its open writer."""

    directory: str
    segments: list[int] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)
    max_size: int = 20_000_000
    max_file: int = 5
    writers: int = 0
    next_seq: int = 1
    last_active: float = field(default_factory=time.time)
    changed: trio.Event | None = None  # made by a follower's watch(): most appends have none
    fd: int = -1

    @property
    def size(self) -> int:
        return sum(self.sizes.values())

    def path(self, seq: int) -> str:
        return os.path.join(self.directory, _segment_name(seq))

    def watch(self) -> trio.Event:
        """An event set by the next change (append, rotation, close)."""
        if self.changed is None:
            self.changed = trio.Event()
        return self.changed

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None


class LogStore:
    """All containers' logs under ``root``; see the module docstring for bounds."""

    def __init__(self, root: str, max_total_bytes: int) -> None:
        self.root = root
        self.max_total_bytes = max_total_bytes
        self._counts = StoreStatistics()
        self._evict_logged_at = -EVICT_LOG_INTERVAL
        self._evicted_unlogged = 0
        self._logs: dict[str, ContainerLog] = {}
        self._total = 0
        makedirs_private(root)
        for name in os.listdir(root):
            directory = os.path.join(root, name)
            if os.path.isdir(directory):
                self._logs[name] = self._scan(directory)
                self._total += self._logs[name].size

    @staticmethod
    def _scan(directory: str) -> ContainerLog:
        clog = ContainerLog(directory, last_active=os.stat(directory).st_mtime)
        for entry in os.scandir(directory):
            if entry.name.endswith(_SUFFIX) and entry.name[: -len(_SUFFIX)].isdigit():
                seq = int(entry.name[: -len(_SUFFIX)])
                clog.segments.append(seq)
                stat = entry.stat()
                clog.sizes[seq] = stat.st_size
                clog.last_active = max(clog.last_active, stat.st_mtime)
        clog.segments.sort()
        clog.next_seq = clog.segments[-1] + 1 if clog.segments else 1
        return clog

    @property
    def total_bytes(self) -> int:
        return self._total

    def statistics(self) -> StoreStatistics:
        return dataclasses.replace(self._counts, bytes=self._total, containers=len(self._logs))

    def touch(self, clog: ContainerLog) -> None:
        """Activity on a container's logs (a read): retention counts from now."""
        clog.last_active = time.time()

    def get(self, container_id: str) -> ContainerLog | None:
        return self._logs.get(container_id)

    def container_ids(self) -> list[str]:
        return list(self._logs)

    # -- writing ---------------------------------------------------------------

    def open_writer(self, container_id: str, max_size: int, max_file: int) -> ContainerLog:
        """Register a FIFO writing for this container (refcounted; no file is created yet)."""
        clog = self._logs.get(container_id)
        if clog is None:
            directory = os.path.join(self.root, container_id)
            makedirs_private(directory)
            clog = self._logs[container_id] = ContainerLog(directory)
        clog.max_size, clog.max_file = max_size, max_file
        clog.writers += 1
        clog.last_active = time.time()
        return clog

    def close_writer(self, clog: ContainerLog) -> None:
        clog.writers -= 1
        clog.last_active = time.time()
        if clog.writers == 0:
            _release(clog)
        clog.notify()

    def append(self, clog: ContainerLog, raw: bytes) -> None:
        """Append whole frames; rotates at frame boundaries when a segment fills.

        Raises OSError when the disk refuses (a full disk, a failed rotation): the
        frames not yet written are not in the store, and no segment is left holding
        part of a frame. The writer stays usable: the next append tries again.
        """
        try:
            while raw:
                if clog.fd < 0 or clog.sizes[clog.segments[-1]] >= clog.max_size:
                    self._rotate(clog)
                seq = clog.segments[-1]
                room = clog.max_size - clog.sizes[seq]
                cut = len(raw) if len(raw) <= room else _frames_fitting(raw, room)
                if cut == 0:
                    if clog.sizes[seq] > 0:
                        self._rotate(clog)  # the next frame does not fit: start a new segment
                        continue
                    cut = _first_frame_length(raw)  # a frame bigger than max-size gets a segment alone
                write_whole(clog.fd, raw[:cut], clog.sizes[seq])
                clog.sizes[seq] += cut
                self._total += cut
                self._counts.bytes_written += cut
                raw = raw[cut:]
        finally:
            clog.last_active = time.time()
            clog.notify()
            if self._total > self.max_total_bytes:
                self._evict_to(int(self.max_total_bytes * 0.9))

    def _rotate(self, clog: ContainerLog) -> None:
        """Open the next segment, then close the current one: a failed open (a full
        or read-only disk, no descriptors left) changes nothing, and no descriptor
        number is ever held after it was closed."""
        if clog.fd < 0 and clog.segments and clog.sizes[clog.segments[-1]] == 0:
            seq, new = clog.segments[-1], False  # reuse an empty segment (e.g. after a restart)
        else:
            seq, new = clog.next_seq, True
        fd, size = open_segment(clog.path(seq))
        if clog.fd >= 0:
            _release(clog)
            self._counts.segments_rotated += 1
        clog.fd = fd
        if new:
            clog.next_seq += 1
            clog.segments.append(seq)
        clog.sizes[seq] = size
        while len(clog.segments) > clog.max_file:
            self._delete_segment(clog, clog.segments[0])

    def _delete_segment(self, clog: ContainerLog, seq: int) -> None:
        if clog.segments and seq == clog.segments[-1]:
            _release(clog)  # the live segment: the next append starts a new one
        with contextlib.suppress(FileNotFoundError):
            os.unlink(clog.path(seq))
        clog.segments.remove(seq)
        self._total -= clog.sizes.pop(seq)

    def _evict_to(self, target: int) -> None:
        """The container holding the most pays: its oldest segment goes first, again and
        again, so that one container writing flat out cannot push its neighbours' history
        out of the store (oldest-first across everyone did). Its live segment goes last."""
        evicted = 0
        while self._total > target:
            holders = [clog for clog in self._logs.values() if clog.segments]
            if not holders:
                break
            largest = max(holders, key=lambda clog: (len(clog.segments) > 1, sum(clog.sizes.values())))
            self._delete_segment(largest, largest.segments[0])
            self._counts.segments_evicted_by_cap += 1
            evicted += 1
        self._evicted_unlogged += evicted
        now = time.monotonic()
        if evicted and now - self._evict_logged_at >= EVICT_LOG_INTERVAL:
            # Once a minute at most: a container writing flat out evicts on every rotation.
            log.warning(
                "store over its %d-byte cap: evicted %d segments of its largest holders, now %d bytes",
                self.max_total_bytes,
                self._evicted_unlogged,
                self._total,
            )
            self._evict_logged_at, self._evicted_unlogged = now, 0

    # -- removal ---------------------------------------------------------------

    def remove(self, container_id: str) -> None:
        clog = self._logs.pop(container_id, None)
        if clog is None:
            return
        self._total -= clog.size
        shutil.rmtree(clog.directory, ignore_errors=True)
        self._counts.containers_collected += 1
        clog.notify()

    def collect_garbage(self, now: float, retention: float, removed: set[str] | None = None) -> list[str]:
        """Delete the logs of containers that are gone.

        Policy: a container with no live FIFO is deleted when the daemon says it
        no longer exists (``removed``, when the Docker API is reachable), or when
        nothing wrote or read its logs for ``retention`` seconds.
        """
        collected = []
        for container_id, clog in list(self._logs.items()):
            if clog.writers:
                continue
            if (removed is not None and container_id in removed) or now - clog.last_active > retention:
                self.remove(container_id)
                collected.append(container_id)
        return collected

    def close(self) -> None:
        for clog in self._logs.values():
            _release(clog)


def _release(clog: ContainerLog) -> None:
    """Close the writer's descriptor, forgetting its number first: even a failed close
    (EIO) releases it, and a number kept after that would write into whatever file
    or FIFO the process opens next."""
    fd, clog.fd = clog.fd, -1
    if fd >= 0:
        try:
            os.close(fd)
        except OSError as exc:
            log.error("closing a segment of %s failed: %s", os.path.basename(clog.directory)[:12], exc)


def _first_frame_length(raw: bytes) -> int:
    (length,) = HEADER.unpack_from(raw, 0)
    return 4 + int(length)


def _frames_fitting(raw: bytes, room: int) -> int:
    """Length of the longest prefix of whole frames that fits in ``room`` bytes."""
    pos = 0
    while pos + 4 <= len(raw):
        end = pos + 4 + HEADER.unpack_from(raw, pos)[0]
        if end > room:
            break
        pos = end
    return pos


def iter_chunks(path: str, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """Whole frames of one segment from ``offset``, about ``_READ_CHUNK`` bytes at a time,
    each with the offset reached; a torn frame at the end (a crash mid-append) is left out."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed in finally; generator may pause
    except FileNotFoundError:
        return
    try:
        handle.seek(offset)
        pending = b""
        while chunk := handle.read(_READ_CHUNK):
            pending += chunk
            cut, _ = whole_frames(pending)
            if cut:
                offset += cut
                yield pending[:cut], offset
                pending = pending[cut:]
    finally:
        handle.close()

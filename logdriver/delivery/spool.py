"""Disk spool (``buffer=disk``): one sink's queue for one container, on disk.

Layout: ``<dir>/<seq>.spool`` segment files of records, and ``cursor`` (the
first record not yet delivered, as ``seq offset``). A record is
``[u32 length][u32 crc32][u32 entries][payload]``, big-endian, and the payload
is the batch as Docker frames (``LogBatch.to_frames``). Only offsets are kept
in memory: a batch is read back from disk when the worker takes it.

Guarantees:
- an offered batch is written (``write``) before ``offer`` returns, so it
  survives a plugin crash; ``fsync`` runs at most every ``fsync_interval``
  seconds and at close, so a host crash loses at most that much;
- the cursor moves only in ``ack``, after delivery, and is rewritten
  atomically: after a crash the spool replays from the last ack, so delivery
  is at-least-once (a batch delivered but not yet acked is sent again);
- a corrupt record (bad length or checksum) ends its segment: the rest of that
  segment is skipped and counted, never a stuck queue;
- bounded like the memory queue, in bytes on disk and in entries, with the
  same overflow policies (``_buffer.Overflow``).
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass

from logdriver._files import makedirs_private, open_segment, write_private, write_whole
from logdriver._native import LogBatch
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.budget import Allowance, memory_cost, request_bytes, request_cost, unlimited
from logdriver.delivery.memory_queue import Offer

log = logging.getLogger("logdriver.spool")

_HEAD = struct.Struct(">III")
_SUFFIX = ".spool"


@dataclass(slots=True)
class _Record:
    seq: int
    end: int  # offset just past this record in its segment
    size: int  # bytes on disk, header included
    entries: int
    queued_at: float


class SpoolReadError(Exception):
    """A spooled record could not be read back; its ``lines`` are lost."""

    def __init__(self, lines: int, reason: str) -> None:
        super().__init__(reason)
        self.lines = lines


class DiskQueue:
    """The ``LineQueue`` protocol on disk: what is not acked survives a restart."""

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        max_entries: int,
        overflow: Overflow,
        segment_bytes: int = 8 << 20,
        fsync_interval: float = 1.0,
        now: float = 0.0,
        disk: Allowance | None = None,
        memory: Allowance | None = None,
        durable: bool = True,
    ) -> None:
        self.directory = directory
        # Not durable: the overflow of a memory queue (``SpillQueue``), lost at a restart as
        # memory is: no fsync and no cursor file, only the page cache and segment files.
        self.durable = durable
        self.disk: Allowance = disk or unlimited("disk")
        # What is read back is in memory until it is acked: charged to the container's share,
        # and a take reads no more than the share has room for (one record at least).
        self.memory: Allowance = memory or unlimited("memory")
        self._taken_cost = 0
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.overflow = overflow
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.bytes = 0  # on disk, undelivered
        self.entries = 0  # undelivered, not yet handed out
        self.corrupt_bytes = 0
        self.unreadable_entries = 0  # lines of records that could not be read back (lost, counted)
        self._records: deque[_Record] = deque()  # undelivered, in order
        self._taken = 0  # records at the head handed out by take(), not yet acked
        self._fd = -1
        self._seq = 0
        self._size = 0
        self._last_sync = 0.0
        makedirs_private(directory)
        if durable:
            self._load(now)
        else:
            self._seq = 1
        self.disk.take(self.bytes)

    # -- recovery ----------------------------------------------------------------

    def _segments(self) -> list[int]:
        return sorted(int(n[: -len(_SUFFIX)]) for n in os.listdir(self.directory) if n.endswith(_SUFFIX))

    def _path(self, seq: int) -> str:
        return os.path.join(self.directory, f"{seq:08d}{_SUFFIX}")

    def _load(self, now: float) -> None:
        cursor_seq, cursor_offset = 0, 0
        try:
            with open(os.path.join(self.directory, "cursor")) as handle:
                cursor_seq, cursor_offset = (int(x) for x in handle.read().split())
        except (FileNotFoundError, ValueError):
            pass
        segments = self._segments()
        for seq in segments:
            if seq < cursor_seq or (seq == cursor_seq and cursor_offset >= os.path.getsize(self._path(seq))):
                os.unlink(self._path(seq))  # delivered
                continue
            with open(self._path(seq), "rb") as handle:
                data = handle.read()
            pos = cursor_offset if seq == cursor_seq else 0
            while pos < len(data):
                if len(data) - pos < _HEAD.size:
                    break
                length, crc, entries = _HEAD.unpack_from(data, pos)
                payload = data[pos + _HEAD.size : pos + _HEAD.size + length]
                if len(payload) != length or zlib.crc32(payload) != crc:
                    break
                pos += _HEAD.size + length
                self._records.append(_Record(seq, pos, _HEAD.size + length, entries, now))
                self.bytes += _HEAD.size + length
                self.entries += entries
            if pos < len(data):
                skipped = len(data) - pos
                self.corrupt_bytes += skipped
                log.error(
                    "spool %s: skipped %d corrupt or truncated bytes at the end of %s",
                    self.directory,
                    skipped,
                    self._path(seq),
                )
            self._seq = seq
        # Never reuse a sequence number the cursor may still point into.
        self._seq = max(segments[-1] + 1 if segments else 1, cursor_seq + 1)

    # -- the BatchQueue interface ------------------------------------------------

    def __len__(self) -> int:
        return self.entries

    def oldest_since(self) -> float | None:
        head = self._taken
        return self._records[head].queued_at if len(self._records) > head else None

    def offer(self, batch: LogBatch, now: float) -> Offer:
        if not batch:
            return Offer()
        payload = batch.to_frames()
        size = _HEAD.size + len(payload)
        fits = self._fits(size, len(batch))
        offer = Offer()
        if not fits and self._records:
            if self.overflow is Overflow.BLOCK:
                return Offer(must_wait=True)
            if self.overflow is Overflow.DROP_NEWEST:
                return Offer(dropped=len(batch))
            while len(self._records) > self._taken and not self._fits(size, len(batch)):
                dropped = self._records[self._taken]
                offer.dropped += dropped.entries
                self._forget(self._taken)
            if not self._fits(size, len(batch)) and size > self.disk.room():
                return Offer(dropped=offer.dropped + len(batch))  # other spools hold the disk budget
        self._append(payload, size, len(batch), now)
        offer.accepted = len(batch)
        return offer

    def _fits(self, size: int, entries: int) -> bool:
        if self.bytes + size > self.max_bytes or self.entries + entries > self.max_entries:
            return False
        if size > self.disk.room():
            self.disk.refusals += 1
            return False
        return True

    @property
    def undelivered(self) -> int:
        """Undelivered entries, including those handed out and not yet acked."""
        return sum(record.entries for record in self._records)

    @property
    def spooled_bytes(self) -> int:
        return self.bytes

    def take(self, max_entries: int, max_bytes: int) -> LogBatch | None:
        """Whole records from the head (at least one), up to the limits.

        Raises ``SpoolReadError`` when the head record cannot be read back (an I/O
        error, a segment removed under the spool): that record is handed out as lost,
        so the next ``ack`` moves past it, and the caller counts its lines.
        """
        parts: list[LogBatch] = []
        entries = size = 0
        room = self.memory.room()
        max_bytes = request_bytes(max_bytes, room)
        while len(self._records) > self._taken and (not parts or (entries < max_entries and size < max_bytes)):
            record = self._records[self._taken]
            if parts and (entries + record.entries > max_entries or size + record.size > max_bytes):
                break
            try:
                batch = self._read(record)
            except (OSError, ValueError) as exc:
                if parts:
                    break  # hand out what was read; the next take meets this record first
                self.entries -= record.entries
                self._taken += 1
                self.unreadable_entries += record.entries
                raise SpoolReadError(record.entries, f"{type(exc).__name__}: {exc}") from exc
            parts.append(batch)
            entries += record.entries
            size += batch.nbytes
            self.entries -= record.entries
            self._taken += 1
        if not parts:
            return None
        cost = memory_cost(entries, size, len(parts)) + request_cost(size)
        self.memory.take(cost)
        self._taken_cost += cost
        return parts[0] if len(parts) == 1 else LogBatch.concat(parts)

    def ack(self) -> None:
        """Everything taken so far was delivered (or given up on): move the cursor past it."""
        self.memory.give(self._taken_cost)
        self._taken_cost = 0
        if not self._taken:
            return
        last = self._records[self._taken - 1]
        for _ in range(self._taken):
            size = self._records.popleft().size
            self.bytes -= size
            self.disk.give(size)
        self._taken = 0
        self._write_cursor(last.seq, last.end)

    def drain(self) -> int:
        """Close-time: what is left stays on disk for the next start; nothing is dropped."""
        self.sync()
        return 0

    # -- internals ---------------------------------------------------------------

    def _read(self, record: _Record) -> LogBatch:
        with open(self._path(record.seq), "rb") as handle:
            handle.seek(record.end - record.size)
            data = handle.read(record.size)
        if len(data) != record.size:
            raise ValueError(f"record cut short: {len(data)} of {record.size} bytes")
        length, crc, _ = _HEAD.unpack_from(data)
        payload = data[_HEAD.size :]
        if length != len(payload) or zlib.crc32(payload) != crc:
            raise ValueError("record changed on disk (bad length or checksum)")
        return LogBatch.from_frames(payload)

    def _forget(self, index: int) -> None:
        """Drop an untaken record (drop-oldest); its bytes stay until the cursor passes them."""
        record = self._records[index]
        del self._records[index]
        self.bytes -= record.size
        self.disk.give(record.size)
        self.entries -= record.entries
        if index == 0:
            self._write_cursor(record.seq, record.end)

    def _append(self, payload: bytes, size: int, entries: int, now: float) -> None:
        if self._fd < 0 or self._size >= self.segment_bytes:
            self._roll()
        write_whole(self._fd, _HEAD.pack(len(payload), zlib.crc32(payload), entries) + payload, self._size)
        self._size += size
        self._records.append(_Record(self._seq, self._size, size, entries, now))
        self.bytes += size
        self.entries += entries
        self.disk.take(size)
        if self.durable and time.monotonic() - self._last_sync >= self.fsync_interval:
            try:
                self.sync()
            except OSError as exc:
                # The record is written (the page cache has it) and queued: only its
                # durability across a host crash is in doubt. Say so; do not count it lost.
                self._last_sync = time.monotonic()
                log.error("spool %s: fsync failed: %s", self.directory, exc)

    def _roll(self) -> None:
        """Open the next segment, then close the current one: a failed open changes nothing,
        and no descriptor number is kept after it was closed."""
        seq = self._seq + 1 if self._fd >= 0 else self._seq
        fd, size = open_segment(self._path(seq))
        old, self._fd, self._seq, self._size = self._fd, fd, seq, size
        if old >= 0:
            try:
                if self.durable:
                    os.fsync(old)
            except OSError as exc:
                log.error("spool %s: fsync of a full segment failed: %s", self.directory, exc)
            finally:
                os.close(old)

    def _write_cursor(self, seq: int, offset: int) -> None:
        if self.durable:
            write_private(os.path.join(self.directory, "cursor"), f"{seq} {offset}".encode())
        for old in self._segments():
            if old < seq:
                os.unlink(self._path(old))

    def sync(self) -> None:
        if self._fd >= 0 and self.durable:
            os.fsync(self._fd)
        self._last_sync = time.monotonic()

    def close(self, unsettled: int = 0) -> int:
        """Release the descriptor and this spool's share of the disk budget.

        Its files stay, with every unacknowledged line (``unsettled`` included)
        for the next start: nothing is lost.
        """
        self.disk.give(self.bytes)
        self.memory.give(self._taken_cost)
        self._taken_cost = 0
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        return 0

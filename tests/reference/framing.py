"""The reference frame decoder, in plain Python: ``native/src/wire.rs`` must agree with it.

Sans-IO codec for Docker's length-prefixed frames (FIFO and ReadLogs body).

A frame is a 4-byte big-endian length followed by that many bytes of a
protobuf ``LogEntry``. Reads split frames anywhere, so the decoder buffers.

The decoder works a chunk at a time rather than a frame at a time: one
``receive_data`` + ``next_frames`` call per pipe read returns every complete
frame in it, which keeps per-line Python overhead to a minimum.

Corruption policy: a header announcing more than ``max_frame_size`` bytes
means the stream is desynchronised (a writer died mid-frame, or the bytes are
not Docker's). Closing the FIFO would freeze the container in its next write,
so the decoder instead counts the error and skips ahead to the next plausible
frame start: every daemon frame body begins with field 1, ``source``, i.e. the
bytes ``0A 06 's' 't' 'd'``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct(">I")
# Docker frames are <= 16 KiB of line plus ~100 bytes; ReadLogs frames we write
# ourselves are the same entries. 1 MiB matches moby's own reader cap.
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20
SOURCE_FIELD_START: Final = b"\x0a\x06std"


def encode_frame(body: bytes) -> bytes:
    """One frame: the inverse of the decoder, used for ReadLogs responses."""
    return HEADER.pack(len(body)) + body


@dataclass(slots=True)
class Frames:
    """What one ``next_frames`` call produced.

    ``bodies`` are the protobuf payloads in order; ``raw`` is the exact byte
    span they came from (headers included), ready to append to a store.
    """

    bodies: list[bytes]
    raw: bytes


@dataclass(slots=True)
class DecoderStatistics:
    frames: int = 0
    bytes: int = 0
    oversize_frames: int = 0
    skipped_bytes: int = 0
    truncated_bytes_at_eof: int = 0


class FrameDecoder:
    """Splits a byte stream into frame bodies.

    ``receive_data(b"")`` signals EOF; afterwards ``truncated_bytes`` tells how
    many bytes of an unfinished frame were left (also counted in statistics).
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self.max_frame_size = max_frame_size
        self._pending = b""
        self._eof = False
        self._resyncing = False
        self.statistics = DecoderStatistics()

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def receive_data(self, data: bytes) -> None:
        if self._eof:
            raise RuntimeError("receive_data after EOF")
        if not data:
            self._eof = True
            return
        self._pending = self._pending + data if self._pending else bytes(data)

    def next_frames(self) -> Frames:
        """Every complete frame buffered so far; keeps the incomplete rest."""
        buf = self._pending
        size = len(buf)
        pos = 0
        start = 0
        bodies: list[bytes] = []
        raw_parts: list[bytes] = []
        unpack = HEADER.unpack_from
        limit = self.max_frame_size
        stats = self.statistics
        while True:
            if self._resyncing:
                found = self._find_header(buf, pos)
                if found < 0:
                    # The marker may straddle this read and the next: keep its length.
                    keep = max(pos, size - (len(SOURCE_FIELD_START) + 3))
                    stats.skipped_bytes += keep - pos
                    pos = start = keep
                    break
                stats.skipped_bytes += found - pos
                pos = start = found
                self._resyncing = False
            if size - pos < 4:
                break
            (length,) = unpack(buf, pos)
            if length > limit:
                stats.oversize_frames += 1
                if pos > start:
                    raw_parts.append(buf[start:pos])
                self._resyncing = True
                stats.skipped_bytes += 1
                pos = start = pos + 1
                continue
            end = pos + 4 + length
            if end > size:
                break
            bodies.append(buf[pos + 4 : end])
            pos = end
        if pos > start:
            raw_parts.append(buf[start:pos])
        self._pending = buf[pos:]
        if self._eof and self._pending:
            stats.truncated_bytes_at_eof += len(self._pending)
            self._pending = b""
        stats.frames += len(bodies)
        raw = raw_parts[0] if len(raw_parts) == 1 else b"".join(raw_parts)
        stats.bytes += len(raw)
        return Frames(bodies, raw)

    def _find_header(self, buf: bytes, start: int) -> int:
        """Offset of the next plausible frame header at or after ``start``, or -1."""
        at = start + 4
        while True:
            hit = buf.find(SOURCE_FIELD_START, at)
            if hit < 0:
                return -1
            (length,) = HEADER.unpack_from(buf, hit - 4)
            if len(SOURCE_FIELD_START) <= length <= self.max_frame_size:
                return hit - 4
            at = hit + 1

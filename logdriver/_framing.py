"""Docker's length-prefixed frames: a 4-byte big-endian length, then a protobuf ``LogEntry``.

Decoding is native (``native/src/wire.rs``, for the FIFOs and ReadLogs alike);
tests/reference/framing.py is the plain-Python reference it is checked against.
"""

from __future__ import annotations

import struct
from typing import Final

HEADER: Final = struct.Struct(">I")
# Docker frames are <= 16 KiB of line plus ~100 bytes; ReadLogs frames we write
# ourselves are the same entries. 1 MiB matches moby's own reader cap.
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20


def encode_frame(body: bytes) -> bytes:
    """One frame around an encoded ``LogEntry`` (see ``encode_entry``)."""
    return HEADER.pack(len(body)) + body

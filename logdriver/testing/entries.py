"""Writing ``LogEntry`` frames as dockerd does: for tests, benchmarks and sink authors.

Reading them is native (``native/src/wire.rs`` and ``join.rs``); the plain-Python
reference decoder lives in tests/reference/entries.py.
"""

from __future__ import annotations

from logdriver._proto.entry_pb2 import LogEntry
from logdriver._records import PartialInfo


def encode_entry(source: str, time_nano: int, line: bytes, partial: PartialInfo | None = None) -> bytes:
    """Serialise one LogEntry the way dockerd does (tests and ReadLogs)."""
    message = LogEntry(source=source, time_nano=time_nano, line=line, partial=partial is not None)
    if partial is not None:
        message.partial_log_metadata.id = partial.id
        message.partial_log_metadata.ordinal = partial.ordinal
        message.partial_log_metadata.last = partial.last
    return message.SerializeToString()

"""The reference entry decoder, in plain Python (upb): ``native/src/join.rs`` must agree with it.

Sans-IO: frame bodies to ``LogRecord`` lines, rejoining Docker's 16 KiB splits.

Docker cuts any line longer than 16 KiB into chunks that share a partial
``id``; every chunk has ``partial=true`` and the one that ends the line has
``last=true`` (and may be empty). stdout and stderr chunks interleave, so open
lines are keyed by id. A line whose stream ends before it is terminated never
gets its ``last`` chunk: ``flush`` emits it at EOF.

Memory policy: an open line is capped at ``max_line_size`` bytes. At the cap
the text so far is emitted as one piece (``PartialInfo(last=False)``) and the
rest continues as the next piece with the same id, so nothing is dropped and a
consumer can still rejoin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError

from logdriver import LogRecord, PartialInfo
from logdriver._proto.entry_pb2 import LogEntry

DEFAULT_MAX_LINE_SIZE: Final = 1 << 20
# Docker keeps at most one split line open per stream; more means a corrupt or
# hostile stream, and the oldest open line is flushed rather than held forever.
MAX_OPEN_LINES: Final = 8


@dataclass(slots=True)
class EntryStatistics:
    entries: int = 0
    decode_errors: int = 0
    lines_rejoined: int = 0
    lines_cut: int = 0
    lines_unterminated: int = 0


class _OpenLine:
    __slots__ = ("id", "opened", "parts", "piece", "size", "source", "time_nano")

    def __init__(self, partial_id: str, source: str, time_nano: int, opened: int) -> None:
        self.opened = opened
        self.id = partial_id
        self.source = source
        self.time_nano = time_nano
        self.parts: list[bytes] = []
        self.size = 0
        self.piece = 1


class EntryDecoder:
    """Turns protobuf bodies into records; one instance per FIFO."""

    def __init__(self, max_line_size: int = DEFAULT_MAX_LINE_SIZE) -> None:
        self.max_line_size = max_line_size
        self._message = LogEntry()
        self._open: dict[str, _OpenLine] = {}
        self._opened = 0
        self.statistics = EntryStatistics()

    @property
    def open_bytes(self) -> int:
        return sum(o.size for o in self._open.values())

    def decode(self, bodies: list[bytes]) -> list[LogRecord]:
        out: list[LogRecord] = []
        append = out.append
        message = self._message
        parse = message.ParseFromString
        for body in bodies:
            try:
                parse(body)
            except DecodeError:
                self.statistics.decode_errors += 1
                continue
            if not message.partial:
                append(LogRecord(message.source, message.time_nano, message.line))
            else:
                self._join(message, out)
        self.statistics.entries += len(bodies)
        return out

    def _join(self, message: LogEntry, out: list[LogRecord]) -> None:
        meta = message.partial_log_metadata
        # Daemons before 19.03 send no metadata: chunks of one stream are consecutive.
        key = meta.id or "\0" + message.source
        line = self._open.get(key)
        if line is None:
            if len(self._open) >= MAX_OPEN_LINES:
                oldest = min(self._open, key=lambda k: self._open[k].opened)
                out.append(self._unterminated(self._open.pop(oldest)))
            self._opened += 1
            line = self._open[key] = _OpenLine(meta.id, message.source, message.time_nano, self._opened)
        line.parts.append(message.line)
        line.size += len(message.line)
        if meta.last:
            del self._open[key]
            partial = PartialInfo(meta.id, line.piece, True) if line.piece > 1 else None
            out.append(LogRecord(line.source, line.time_nano, b"".join(line.parts), partial))
            self.statistics.lines_rejoined += 1
        elif line.size >= self.max_line_size:
            out.append(
                LogRecord(line.source, line.time_nano, b"".join(line.parts), PartialInfo(meta.id, line.piece, False))
            )
            self.statistics.lines_cut += 1
            line.parts = []
            line.size = 0
            line.piece += 1

    def _unterminated(self, line: _OpenLine) -> LogRecord:
        self.statistics.lines_unterminated += 1
        return LogRecord(line.source, line.time_nano, b"".join(line.parts), PartialInfo(line.id, line.piece, False))

    def flush(self) -> list[LogRecord]:
        """Emit every unterminated line (at EOF), oldest first: marked partial, not last."""
        lines = sorted(self._open.values(), key=lambda line: (line.time_nano, line.opened))
        self._open.clear()
        return [self._unterminated(line) for line in lines]

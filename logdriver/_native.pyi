# Type stub for the Rust extension built from native/ (see native/src/lib.rs).
from typing import final

_Partial = tuple[str, int, bool]
RecordTuple = tuple[str, int, bytes, _Partial | None]

@final
class LogBatch:
    """An immutable batch of rejoined log lines, shared by every sink of a container."""

    @staticmethod
    def from_tuples(records: list[RecordTuple]) -> LogBatch: ...
    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def tuples(self) -> list[RecordTuple]: ...
    def select(self, indexes: list[int]) -> LogBatch: ...
    @staticmethod
    def concat(batches: list[LogBatch]) -> LogBatch: ...
    def slice(self, start: int, stop: int) -> LogBatch: ...
    def to_frames(self) -> bytes: ...
    @staticmethod
    def from_frames(data: bytes) -> LogBatch:
        """Raises ValueError unless ``data`` is whole, decodable frames."""
    def count_within(self, limit: int) -> int:
        """How many leading records fit in ``limit`` line bytes (at least one, if any)."""
    def columns(self) -> tuple[LogBatch, bytes, bytes]:
        """The column form a sink's renderer module takes: (the lines, as a buffer; extras; index)."""

@final
class FrameReader:
    """One FIFO's decoder: frames to entries to rejoined lines, a read at a time."""

    def __init__(self, max_frame_size: int, max_line_size: int) -> None: ...
    def feed(self, data: bytes) -> tuple[bytes, LogBatch]: ...
    def finish(self) -> LogBatch: ...
    @property
    def errors(self) -> int: ...
    @property
    def open_bytes(self) -> int: ...
    def statistics(self) -> dict[str, int]: ...

@final
class ReadLogsEncoder:
    """Stored frames to ReadLogs frames as json-file would serve them, filtered by time."""

    def __init__(self, since_ns: int | None, until_ns: int | None) -> None: ...
    def encode(self, data: bytes, skip: int = 0) -> tuple[bytes, int]:
        """(frames to send, bytes of ``data`` consumed), skipping the first ``skip`` frames."""
    @property
    def past_until(self) -> bool: ...

def whole_frames(data: bytes) -> tuple[int, int]:
    """(bytes, count) of the whole frames at the start of ``data``."""

# Type stub for the Rust extension built from native/ (see native/src/lib.rs).
from typing import Protocol, final

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
    def to_docker_frames(self) -> bytes: ...  # for the store: lines over 16 KiB in Docker's pieces
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
    def cut_open(self) -> LogBatch:
        """The open partial lines' bytes now, as pieces; their memory is freed."""
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

def json_records(batch: LogBatch, suffix: bytes) -> bytes:
    """logdriver's JSON record of every line, each followed by ``suffix``."""

def whole_frames(data: bytes) -> tuple[int, int]:
    """(bytes, count) of the whole frames at the start of ``data``."""

class FifoPoller:
    """One thread reading many FIFOs (native/src/poller.rs)."""

    def __init__(self, interval: float, max_pending: int, max_total: int, fill: int) -> None: ...
    @property
    def ready_fd(self) -> int: ...
    def add(self, key: int, fd: int) -> None: ...
    def remove(self, key: int) -> bytes: ...
    def pause(self, key: int, paused: bool) -> None: ...
    def take(self) -> list[tuple[int, bytes, bool, int]]: ...
    def hurry(self) -> None: ...
    def ending(self, key: int) -> None: ...
    def read_now(self, key: int) -> tuple[bytes, bool, int]: ...
    def read_some(self, key: int, limit: int) -> tuple[bytes, bool, int]: ...
    def __len__(self) -> int: ...
    def close(self) -> None: ...

JSON_CAPS: tuple[int, int, int]
PROCESSING_CPU: tuple[float, float]  # (share of a core, seconds at once) one container may spend
# Every processing counter, (name, help), in the stage's step order, then the stage's own.
PROCESSING_COUNTERS: list[tuple[str, str]]
PATTERN_FALLBACK_PREFIX: int
LEVEL_NAMES: list[str]  # min-level's values, lowest first
REDACT_PRESETS: list[str]  # redact='s names (and all)
# The rate limit's marker stream, its seconds between markers, and block's longest hold per read.
RATE_LIMIT: tuple[str, float, float]
"""What one line parse=json reads may hold: bytes, nesting depth, keys."""

MULTILINE_RULES: list[tuple[str, list[tuple[str, str, str, bool]]]]
"""Each preset's rules: (from state, pattern, to state, hold) (native/src/presets.rs)."""

JSON_KEYS: list[tuple[str, list[str]]]
"""parse=json's well-known fields and the keys each is read from, first match wins."""

MULTILINE_PRESETS: list[str]
"""The names ``multiline=`` accepts (native/src/presets.rs)."""

def check_pattern(pattern: str) -> None:
    """Raise ValueError with the reason if ``pattern`` is not a usable multiline pattern."""

class StageConfig(Protocol):
    """What a stage is made from, read by attribute (``logdriver.config.processing.Processing``)."""

    @property
    def preset(self) -> str | None: ...  # None or empty: unset (every text below too)
    @property
    def start(self) -> str | None: ...
    @property
    def cont(self) -> str | None: ...
    @property
    def max_lines(self) -> int: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def timeout(self) -> float: ...
    @property
    def parse_json(self) -> bool: ...
    @property
    def drop_lines(self) -> str | None: ...
    @property
    def keep_lines(self) -> str | None: ...
    @property
    def min_level(self) -> str | None: ...  # one of LEVEL_NAMES
    @property
    def rate_limit(self) -> float | None: ...  # lines a second
    @property
    def rate_limit_bytes(self) -> float | None: ...  # bytes a second
    @property
    def rate_limit_burst(self) -> int | None: ...  # lines; None: one second of rate_limit
    @property
    def rate_limit_exempt(self) -> str | None: ...
    @property
    def rate_limit_action(self) -> str | None: ...  # drop (None) or block
    @property
    def redact(self) -> str | None: ...  # a comma list of REDACT_PRESETS, or all
    @property
    def redact_pattern(self) -> str | None: ...
    @property
    def redact_mode(self) -> str | None: ...  # mask (None), hash or drop-line
    @property
    def redact_store(self) -> bool: ...

class Stage:
    """One container's processing steps in order (native/src/stage.rs, step.rs)."""

    def __init__(self, config: StageConfig, redact_key: bytes | None = None) -> None: ...
    def redact(self, batch: LogBatch, now: float) -> LogBatch: ...  # for the store, with redacts_store
    @property
    def redacts_store(self) -> bool: ...
    def process(self, batch: LogBatch, now: float) -> LogBatch: ...
    @property
    def cheap(self) -> bool: ...
    def flush_due(self, now: float) -> LogBatch: ...
    def finish(self, now: float) -> LogBatch: ...
    def cut_open(self, now: float) -> LogBatch: ...
    def next_deadline(self) -> float | None: ...
    @property
    def light(self) -> bool: ...  # every step a small constant of ours per line: any read on the loop
    @property
    def holds_back(self) -> bool: ...  # a block rate limit holds lines: stop reading the FIFO
    @property
    def held_bytes(self) -> int: ...
    def statistics(self) -> dict[str, int]: ...

"""The data types that cross module boundaries: records and container facts.

These are plain slotted classes, not frozen dataclasses, because one is built
per log line on the hot path and ``frozen=True`` doubles construction cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from logdriver._native import LogBatch

STDOUT: Final = "stdout"
STDERR: Final = "stderr"


@dataclass(slots=True, frozen=True)
class PartialInfo:
    """Docker's split-line metadata, kept only when a line could not be rejoined whole.

    A rejoined line has no PartialInfo. A record carries one when the line
    was cut at ``partial-max-size`` (``last`` tells which piece ends it) or
    when the stream ended before the line was terminated (``last=False``).
    """

    id: str
    ordinal: int
    last: bool


class LogRecord:
    """One log line (rejoined if Docker split it), without its trailing newline."""

    __slots__ = ("line", "partial", "source", "time_nano")

    def __init__(self, source: str, time_nano: int, line: bytes, partial: PartialInfo | None = None) -> None:
        self.source = source
        self.time_nano = time_nano
        self.line = line
        self.partial = partial

    def __repr__(self) -> str:
        return f"LogRecord({self.source!r}, {self.time_nano}, {self.line[:40]!r}, {self.partial!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogRecord):
            return NotImplemented
        return (self.source, self.time_nano, self.line, self.partial) == (
            other.source,
            other.time_nano,
            other.line,
            other.partial,
        )

    __hash__ = None  # type: ignore[assignment]


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


@dataclass(slots=True, frozen=True)
class ContainerInfo:
    """The daemon's ``Info`` object, typed. Nil maps and slices arrive as ``null``."""

    container_id: str
    name: str
    image_name: str = ""
    image_id: str = ""
    created: str = ""
    entrypoint: str = ""
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    daemon_name: str = "docker"
    log_path: str = ""  # the daemon's own log file path for the container (json-file's)

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @classmethod
    def from_json(cls, info: Mapping[str, Any]) -> ContainerInfo:
        """Build from the daemon's JSON (keys are Go field names; nulls are empty)."""
        return cls(
            container_id=str(info.get("ContainerID") or ""),
            name=str(info.get("ContainerName") or ""),
            image_name=str(info.get("ContainerImageName") or ""),
            image_id=str(info.get("ContainerImageID") or ""),
            created=str(info.get("ContainerCreated") or ""),
            entrypoint=str(info.get("ContainerEntrypoint") or ""),
            args=_str_list(info.get("ContainerArgs")),
            env=_str_list(info.get("ContainerEnv")),
            labels=_str_map(info.get("ContainerLabels")),
            config=_str_map(info.get("Config")),
            daemon_name=str(info.get("DaemonName") or "docker"),
            log_path=str(info.get("LogPath") or ""),
        )


def env_map(env: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` list to a dict, split at the first ``=`` as Docker does."""
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def records_of(batch: LogBatch) -> list[LogRecord]:
    """A batch as ``LogRecord`` objects (the convenient, slower view for sinks)."""
    return [
        LogRecord(source, time_nano, line, PartialInfo(*partial) if partial is not None else None)
        for source, time_nano, line, partial in batch.tuples()
    ]


def batch_of(records: Sequence[LogRecord]) -> LogBatch:
    """A batch made from records (tests, and sinks that rebuild one)."""
    return LogBatch.from_tuples(
        [
            (r.source, r.time_nano, r.line, (r.partial.id, r.partial.ordinal, r.partial.last) if r.partial else None)
            for r in records
        ]
    )

"""The pipeline's options: buffering, overflow, batching, retries, flushing, per sink.

Every option can be given for all of a container's sinks (``overflow=drop-oldest``)
or for one (``fluentd-overflow=block``). Precedence, first found wins: the
sink-specific log-opt, the general log-opt, ``LOGDRIVER_<SINK>_<OPTION>``,
``LOGDRIVER_<OPTION>``, the sink kind's own default (a local file blocks, a
network destination drops), the general default below.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from logdriver._exceptions import ConfigError
from logdriver.config.retry import RetryPolicy
from logdriver.config.units import choice, non_negative_duration, non_negative_int, positive_int, positive_size


class Overflow(enum.Enum):
    BLOCK = "block"
    DROP_NEWEST = "drop-newest"
    DROP_OLDEST = "drop-oldest"


# name → (default, what it accepts, parser)
PIPELINE_OPTIONS: Final[dict[str, tuple[str, str, Callable[[str], object]]]] = {
    "overflow": ("drop-newest", "block, drop-newest or drop-oldest", Overflow),
    "buffer": ("memory", "memory or disk", choice("memory", "disk")),
    "buffer-max-bytes": ("16m", "a size such as 16m", positive_size),
    "buffer-max-entries": ("100000", "a positive integer", positive_int),
    "block-timeout": ("10s", "a duration such as 10s", non_negative_duration),
    "batch-max-entries": ("5000", "a positive integer", positive_int),
    "batch-max-bytes": ("4m", "a size such as 4m", positive_size),
    "batch-max-wait": ("1s", "a duration such as 1s or 0s", non_negative_duration),
    "retry-initial": ("500ms", "a duration such as 500ms", non_negative_duration),
    "retry-max-delay": ("1s", "a duration such as 1s", non_negative_duration),
    "retry-max-time": ("0s", "a duration; 0s retries forever", non_negative_duration),
    "retry-max-attempts": ("0", "a whole number; 0 retries forever", non_negative_int),
    "flush-timeout": ("5s", "a duration such as 5s", non_negative_duration),
}


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    overflow: Overflow
    buffer: str
    buffer_max_bytes: int
    buffer_max_entries: int
    block_timeout: float
    batch_max_entries: int
    batch_max_bytes: int
    batch_max_wait: float
    retry: RetryPolicy
    flush_timeout: float


def is_pipeline_key(key: str, sinks: Mapping[str, object]) -> bool:
    if key in PIPELINE_OPTIONS:
        return True
    sink, sep, option = key.partition("-")
    # Sink names may contain dashes: try every split.
    while sep:
        if sink in sinks and option in PIPELINE_OPTIONS:
            return True
        head, sep, option = option.partition("-")
        sink = f"{sink}-{head}"
    return False


def _env_name(*parts: str) -> str:
    return "LOGDRIVER_" + "_".join(p.upper().replace("-", "_") for p in parts)


def pipeline_options(
    sink: str, kind_defaults: Mapping[str, str], config: Mapping[str, str], environ: Mapping[str, str]
) -> PipelineOptions:
    """Resolve and parse one sink's pipeline options for one container."""
    values: dict[str, Any] = {}
    for name, (default, accepts, parser) in PIPELINE_OPTIONS.items():
        for where, text in (
            (f"{sink}-{name}", config.get(f"{sink}-{name}")),
            (name, config.get(name)),
            (_env_name(sink, name), environ.get(_env_name(sink, name))),
            (_env_name(name), environ.get(_env_name(name))),
            (name, kind_defaults.get(name)),
            (name, default),
        ):
            if text is not None:
                try:
                    values[name] = parser(text)
                except ValueError as exc:
                    raise ConfigError(where, text, accepts) from exc
                break
    max_time = float(values["retry-max-time"])
    overflow = values["overflow"]
    assert isinstance(overflow, Overflow)
    return PipelineOptions(
        overflow=overflow,
        buffer=str(values["buffer"]),
        buffer_max_bytes=int(values["buffer-max-bytes"]),
        buffer_max_entries=int(values["buffer-max-entries"]),
        block_timeout=float(values["block-timeout"]),
        batch_max_entries=int(values["batch-max-entries"]),
        batch_max_bytes=int(values["batch-max-bytes"]),
        batch_max_wait=float(values["batch-max-wait"]),
        retry=RetryPolicy(
            initial=float(values["retry-initial"]),
            max_delay=float(values["retry-max-delay"]),
            max_elapsed=max_time if max_time > 0 else math.inf,
            max_attempts=int(values["retry-max-attempts"]),
        ),
        flush_timeout=float(values["flush-timeout"]),
    )

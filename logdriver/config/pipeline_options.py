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
from logdriver.config.registry import Option, Scope, env_name
from logdriver.config.retry import RetryPolicy
from logdriver.config.units import choice, int_between, non_negative_duration, size_between

# Upper bounds: a log-opt is a container owner's to set, so none is unbounded. A queue's
# bytes are bounded again by the memory or disk budget, shared; a request's by the size
# any destination takes in one piece; attempts by what anyone means by "retry".
MAX_BUFFER_BYTES: Final = 1 << 30
MAX_BUFFER_ENTRIES: Final = 10_000_000
MAX_SPILL_BYTES: Final = 64 << 30
MAX_BATCH_ENTRIES: Final = 100_000
MAX_BATCH_BYTES: Final = 32 << 20
MAX_RETRY_ATTEMPTS: Final = 4_294_967_295  # what Docker's fluentd-max-retries takes


class Overflow(enum.Enum):
    BLOCK = "block"
    DROP_NEWEST = "drop-newest"
    DROP_OLDEST = "drop-oldest"


def _pipeline(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Option:
    return Option(name, default, accepts, help, parse, scope=Scope.PIPELINE)


PIPELINE_OPTIONS: Final = (
    _pipeline(
        "overflow",
        "drop-newest",
        "block, drop-newest or drop-oldest",
        "what a full queue does: hold the container's output (up to block-timeout) or drop, counted",
        Overflow,
    ),
    _pipeline(
        "buffer",
        "hybrid",
        "hybrid, memory or disk",
        "where the queue is: memory spilling onto disk when full (hybrid), memory only, or a spool "
        "on disk that survives a restart",
        choice("hybrid", "memory", "disk"),
    ),
    _pipeline(
        "buffer-max-bytes",
        "16m",
        "a size from 1 to 1Gi",
        "queue limit in line bytes",
        size_between(1, MAX_BUFFER_BYTES),
    ),
    _pipeline(
        "buffer-max-entries",
        "100000",
        "an integer from 1 to 10000000",
        "queue limit in lines",
        int_between(1, MAX_BUFFER_ENTRIES),
    ),
    _pipeline(
        "spill-max-bytes",
        "1Gi",
        "a size from 0 to 64Gi",
        "with buffer=hybrid, how much may spill onto disk once memory is full (also bounded by the "
        "container's share of the disk budget); 0 spills nothing",
        size_between(0, MAX_SPILL_BYTES),
    ),
    _pipeline(
        "block-timeout",
        "10s",
        "a duration such as 10s",
        "longest wait of a blocked container; then its lines are dropped (counted) until the sink recovers",
        non_negative_duration,
    ),
    _pipeline(
        "batch-max-entries",
        "5000",
        "an integer from 1 to 100000",
        "lines per request at most",
        int_between(1, MAX_BATCH_ENTRIES),
    ),
    _pipeline(
        "batch-max-bytes",
        "4m",
        "a size from 1 to 32Mi",
        "line bytes per request at most (and read back from a spool at once)",
        size_between(1, MAX_BATCH_BYTES),
    ),
    _pipeline(
        "batch-max-wait",
        "1s",
        "a duration such as 1s or 0s",
        "longest a line waits for a fuller request",
        non_negative_duration,
    ),
    _pipeline("retry-initial", "500ms", "a duration such as 500ms", "first retry delay", non_negative_duration),
    _pipeline(
        "retry-max-delay",
        "1s",
        "a duration such as 1s",
        "longest retry delay (exponential, jittered)",
        non_negative_duration,
    ),
    _pipeline(
        "retry-max-time",
        "0s",
        "a duration; 0s retries forever",
        "give a batch up (to the dead letters) after this long",
        non_negative_duration,
    ),
    _pipeline(
        "retry-max-attempts",
        "0",
        "an integer from 0 to 4294967295; 0 retries forever",
        "give a batch up (to the dead letters) after this many attempts",
        int_between(0, MAX_RETRY_ATTEMPTS),
    ),
    _pipeline(
        "flush-timeout",
        "5s",
        "a duration such as 5s",
        "at plugin shutdown, how long the queue may still deliver",
        non_negative_duration,
    ),
)
_BY_NAME: Final = {option.name: option for option in PIPELINE_OPTIONS}


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    overflow: Overflow
    buffer: str
    buffer_max_bytes: int
    buffer_max_entries: int
    spill_max_bytes: int
    block_timeout: float
    batch_max_entries: int
    batch_max_bytes: int
    batch_max_wait: float
    retry: RetryPolicy
    flush_timeout: float
    # The container's log-opts chose the destination, or how it is reached (its TLS, its
    # SASL): no plugin-wide credential goes there, and its failures are the container's
    # own: they show in metrics and /health's body, never as the plugin's 503.
    container_destination: bool = False


def is_pipeline_key(key: str, sinks: Mapping[str, object]) -> bool:
    if key in _BY_NAME:
        return True
    sink, sep, option = key.partition("-")
    # Sink names may contain dashes: try every split up to the longest name (a hostile key
    # of a million dashes costs one pass, not a million).
    longest = max(map(len, sinks), default=0)
    while sep and len(sink) <= longest:
        if sink in sinks and option in _BY_NAME:
            return True
        head, sep, option = option.partition("-")
        sink = f"{sink}-{head}"
    return False


def pipeline_options(
    sink: str, kind_defaults: Mapping[str, str], config: Mapping[str, str], environ: Mapping[str, str]
) -> PipelineOptions:
    """Resolve and parse one sink's pipeline options for one container."""
    values: dict[str, Any] = {}
    for option in PIPELINE_OPTIONS:
        name = option.name
        for where, text in (
            (f"{sink}-{name}", config.get(f"{sink}-{name}")),
            (name, config.get(name)),
            (env_name(sink, name), environ.get(env_name(sink, name))),
            (option.env, environ.get(option.env)),
            (name, kind_defaults.get(name)),
            (name, option.default),
        ):
            if text is not None:
                try:
                    values[name] = option.parse(text)
                except ValueError as exc:
                    raise ConfigError(where, text, option.accepts) from exc
                break
    max_time = float(values["retry-max-time"])
    overflow = values["overflow"]
    assert isinstance(overflow, Overflow)
    return PipelineOptions(
        overflow=overflow,
        buffer=str(values["buffer"]),
        buffer_max_bytes=int(values["buffer-max-bytes"]),
        buffer_max_entries=int(values["buffer-max-entries"]),
        spill_max_bytes=int(values["spill-max-bytes"]),
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

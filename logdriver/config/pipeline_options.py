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
from logdriver.config.registry import OptionRecord, Scope, env_name, option
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


def _pipeline(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Any:
    return option(name, default, accepts, help, parse, scope=Scope.PIPELINE)


@dataclass(frozen=True, slots=True)
class PipelineOptions(OptionRecord):
    """One sink's pipeline options for one container: each field declares its option."""

    overflow: Overflow = _pipeline(  # noqa: RUF009 - a dataclasses.field: the declaration, no shared default
        "overflow",
        "drop-newest",
        "block, drop-newest or drop-oldest",
        "what a full queue does: hold the container's output (up to block-timeout) or drop, counted",
        Overflow,
    )
    buffer: str = _pipeline(
        "buffer",
        "hybrid",
        "hybrid, memory or disk",
        "where the queue is: memory spilling onto disk when full (hybrid), memory only, or a spool "
        "on disk that survives a restart",
        choice("hybrid", "memory", "disk"),
    )
    buffer_max_bytes: int = _pipeline(
        "buffer-max-bytes",
        "16m",
        "a size from 1 to 1Gi",
        "queue limit in line bytes",
        size_between(1, MAX_BUFFER_BYTES),
    )
    buffer_max_entries: int = _pipeline(
        "buffer-max-entries",
        "100000",
        "an integer from 1 to 10000000",
        "queue limit in lines",
        int_between(1, MAX_BUFFER_ENTRIES),
    )
    spill_max_bytes: int = _pipeline(
        "spill-max-bytes",
        "1Gi",
        "a size from 0 to 64Gi",
        "with buffer=hybrid, how much may spill onto disk once memory is full (also bounded by the "
        "container's share of the disk budget); 0 spills nothing",
        size_between(0, MAX_SPILL_BYTES),
    )
    block_timeout: float = _pipeline(
        "block-timeout",
        "10s",
        "a duration such as 10s",
        "longest wait of a blocked container; then its lines are dropped (counted) until the sink recovers",
        non_negative_duration,
    )
    batch_max_entries: int = _pipeline(
        "batch-max-entries",
        "5000",
        "an integer from 1 to 100000",
        "lines per request at most",
        int_between(1, MAX_BATCH_ENTRIES),
    )
    batch_max_bytes: int = _pipeline(
        "batch-max-bytes",
        "4m",
        "a size from 1 to 32Mi",
        "line bytes per request at most (and read back from a spool at once)",
        size_between(1, MAX_BATCH_BYTES),
    )
    batch_max_wait: float = _pipeline(
        "batch-max-wait",
        "1s",
        "a duration such as 1s or 0s",
        "longest a line waits for a fuller request",
        non_negative_duration,
    )
    retry_initial: float = _pipeline(
        "retry-initial", "500ms", "a duration such as 500ms", "first retry delay", non_negative_duration
    )
    retry_max_delay: float = _pipeline(
        "retry-max-delay",
        "1s",
        "a duration such as 1s",
        "longest retry delay (exponential, jittered)",
        non_negative_duration,
    )
    retry_max_time: float = _pipeline(
        "retry-max-time",
        "0s",
        "a duration; 0s retries forever",
        "give a batch up (to the dead letters) after this long",
        non_negative_duration,
    )
    retry_max_attempts: int = _pipeline(
        "retry-max-attempts",
        "0",
        "an integer from 0 to 4294967295; 0 retries forever",
        "give a batch up (to the dead letters) after this many attempts",
        int_between(0, MAX_RETRY_ATTEMPTS),
    )
    flush_timeout: float = _pipeline(
        "flush-timeout",
        "5s",
        "a duration such as 5s",
        "at plugin shutdown, how long the queue may still deliver",
        non_negative_duration,
    )
    # The container's log-opts chose the destination, or how it is reached (its TLS, its
    # SASL): no plugin-wide credential goes there, and its failures are the container's
    # own: they show in metrics and /health's body, never as the plugin's 503.
    container_destination: bool = False

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            initial=self.retry_initial,
            max_delay=self.retry_max_delay,
            max_elapsed=self.retry_max_time if self.retry_max_time > 0 else math.inf,
            max_attempts=self.retry_max_attempts,
        )


PIPELINE_OPTIONS: Final = PipelineOptions.options()
_BY_NAME: Final = {option.name: option for option in PIPELINE_OPTIONS}


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
    for declared in PIPELINE_OPTIONS:
        name = declared.name
        for where, text in (
            (f"{sink}-{name}", config.get(f"{sink}-{name}")),
            (name, config.get(name)),
            (env_name(sink, name), environ.get(env_name(sink, name))),
            (declared.env, environ.get(declared.env)),
            (name, kind_defaults.get(name)),
            (name, declared.default),
        ):
            if text is not None:
                try:
                    values[name] = declared.parse(text)
                except ValueError as exc:
                    raise ConfigError(where, text, declared.accepts) from exc
                break
    return PipelineOptions.from_values(values)

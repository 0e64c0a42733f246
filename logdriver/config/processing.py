"""The processing stage's log-opts, all off by default: multiline joining, ``parse=json``,
and the line policy (keep/drop, the rate limit). The steps run in that order.

The stage itself runs in ``logdriver._native.Stage``. Custom patterns are compiled here by
that same engine (Rust's ``regex``: RE2 syntax and guarantees, matching linear in the line
whatever the pattern, compiled size capped), so a pattern the stage would refuse fails
``docker run`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from logdriver._exceptions import ConfigError
from logdriver._native import LEVEL_NAMES, MULTILINE_PRESETS, RATE_LIMIT, REDACT_PRESETS, Stage, check_pattern
from logdriver.config.registry import OptionRecord, Scope, option
from logdriver.config.units import (
    Explained,
    choice,
    int_between,
    parse_bool,
    parse_duration,
    rate_between,
    size_between,
)

MIN_TIMEOUT: Final = 0.01
MAX_TIMEOUT: Final = 60.0
MARKER_SOURCE, MARKER_INTERVAL, MAX_HOLD = RATE_LIMIT
MAX_LINE_RATE: Final = 10_000_000.0


def _pattern(value: str) -> str:
    try:
        check_pattern(value)
    except ValueError as exc:
        raise Explained(str(exc).splitlines()[-1].strip() or "not a usable pattern") from None
    return value


def _presets(value: str) -> str:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in (*REDACT_PRESETS, "all")]
    if unknown or not names:
        raise ValueError(value)
    return ",".join(names)


def _timeout(value: str) -> float:
    seconds = parse_duration(value)
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise ValueError(value)
    return seconds


def _container(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Any:
    return option(name, default, accepts, help, parse, scope=Scope.CONTAINER)


@dataclass(frozen=True, slots=True)
class Processing(OptionRecord):
    """A container's processing steps, typed: each field declares its log-opt. The native
    stage reads this record by attribute (``stage()``); an empty pattern or preset is unset."""

    preset: str | None = _container(
        "multiline",
        "",
        "one of " + ", ".join(MULTILINE_PRESETS),
        "join each stack trace of this runtime into one event (per stream; off when empty)",
        choice(*MULTILINE_PRESETS),
    )
    start: str | None = _container(
        "multiline-start",
        "",
        "an RE2 regular expression",
        "a line that matches begins an event; the lines up to the next match join it",
        _pattern,
    )
    cont: str | None = _container(
        "multiline-continue",
        "",
        "an RE2 regular expression",
        "a line that matches joins the event before it (with multiline-start: only such lines join)",
        _pattern,
    )
    max_lines: int = _container(
        "multiline-max-lines",
        "1000",
        "an integer from 10 to 100000",
        "lines in one event; the rest goes on as the next event, both marked cut",
        int_between(10, 100_000),
    )
    max_bytes: int = _container(
        "multiline-max-bytes",
        "1m",
        "a size from 16k to 64m",
        "bytes in one event; the rest goes on as the next event, both marked cut",
        size_between(16_000, 64 << 20),
    )
    timeout: float = _container(
        "multiline-timeout",
        "1s",
        "a duration from 10ms to 60s",
        "the longest a line waits for the rest of its event",
        _timeout,
    )
    parse: str | None = _container(
        "parse",
        "",
        "json, or empty",
        "json: a line that is a JSON object is shipped as fields (others unchanged, counted)",
        choice("json"),
    )

    redact: str | None = _container(
        "redact",
        "",
        "a comma-separated list of " + ", ".join(REDACT_PRESETS) + ", or all",
        "mask secrets and personal data before the line leaves the host (and, with redact-store, "
        "before docker logs keeps it); docs/line-policy.md lists what each finds",
        _presets,
    )
    redact_pattern: str | None = _container(
        "redact-pattern",
        "",
        "an RE2 regular expression",
        "your own: each match (its first group, if it has one) is redacted; a line it cannot check "
        "in time is dropped, counted",
        _pattern,
    )
    redact_mode: str = _container(
        "redact-mode",
        "mask",
        "mask, hash or drop-line",
        "mask: the value becomes [REDACTED]; hash: a keyed HMAC-SHA256 of it, [HMAC:16 hex digits] "
        "(LOGDRIVER_REDACT_KEY); drop-line: the line is dropped, counted",
        choice("mask", "hash", "drop-line"),
    )
    redact_store: bool = _container(
        "redact-store",
        "true",
        "true or false",
        "redact before the docker logs store too (false: docker logs keeps what the container wrote)",
        parse_bool,
    )
    drop_lines: str | None = _container(
        "drop-lines",
        "",
        "an RE2 regular expression",
        "a line that matches is dropped (counted)",
        _pattern,
    )
    keep_lines: str | None = _container(
        "keep-lines",
        "",
        "an RE2 regular expression",
        "only lines that match pass; the others are dropped (counted)",
        _pattern,
    )
    min_level: str | None = _container(
        "min-level",
        "",
        "one of " + ", ".join(LEVEL_NAMES),
        "a line whose level (parse=json's, or a level word among its first words) is below it is "
        "dropped (counted); a line without one passes",
        choice(*LEVEL_NAMES),
    )
    rate_limit: float | None = _container(
        "rate-limit",
        "",
        "lines per second or minute, such as 1000/s or 600/m, from 1/m to 10000000/s",
        "past it, lines are dropped (rate-limit-action=drop), and a marker record a second names how many",
        rate_between(1 / 60, MAX_LINE_RATE),
    )
    rate_limit_bytes: float | None = _container(
        "rate-limit-bytes",
        "",
        "a size per second, such as 1m/s, from 1k/s to 1g/s",
        "as rate-limit, in bytes of lines (both may be set: a line must fit both)",
        rate_between(1000, 1 << 30, size=True),
    )
    rate_limit_burst: int | None = _container(
        "rate-limit-burst",
        "",
        "an integer from 1 to 10000000 (empty: one second of rate-limit)",
        "lines that may pass at once after a quiet spell",
        int_between(1, int(MAX_LINE_RATE)),
    )
    rate_limit_exempt: str | None = _container(
        "rate-limit-exempt",
        "",
        "an RE2 regular expression",
        "a line that matches always passes and is not counted against the rate limit",
        _pattern,
    )
    rate_limit_action: str = _container(
        "rate-limit-action",
        "drop",
        "drop or block",
        f"block: the container's output is read no faster than the rate, so its writes slow (held "
        f"{MAX_HOLD:g} s at most per read; past that, dropped as with drop)",
        choice("drop", "block"),
    )

    @property
    def parse_json(self) -> bool:
        return self.parse == "json"

    @property
    def multiline(self) -> bool:
        return bool(self.preset or self.start or self.cont)

    @property
    def line_policy(self) -> bool:
        return bool(self.redacts or self.drop_lines or self.keep_lines or self.min_level or self.rate_limited)

    @property
    def redacts(self) -> bool:
        return bool(self.redact or self.redact_pattern)

    @property
    def rate_limited(self) -> bool:
        return self.rate_limit is not None or self.rate_limit_bytes is not None

    def stage(self, redact_key: bytes = b"") -> Stage:
        """The native stage; ``redact_key`` is the plugin's key for ``redact-mode=hash``."""
        return Stage(self, redact_key)


PROCESSING_OPTIONS: Final = Processing.options()


def processing(values: Mapping[str, object]) -> Processing | None:
    """The steps these parsed option values ask for, or None when there is nothing to do."""
    made = Processing.from_values({name: None if value == "" else value for name, value in values.items()})
    if made.preset and (made.start or made.cont):
        raise ConfigError(
            "multiline",
            made.preset,
            "empty when multiline-start or multiline-continue is set (a preset or your own patterns, not both)",
        )
    if made.rate_limit_burst is not None and made.rate_limit is None:
        raise ConfigError(
            "rate-limit-burst", str(made.rate_limit_burst), "set only with rate-limit (a number of lines)"
        )
    if made.rate_limit_exempt and not made.rate_limited:
        raise ConfigError("rate-limit-exempt", made.rate_limit_exempt, "set only with rate-limit or rate-limit-bytes")
    return made if made.multiline or made.parse_json or made.line_policy else None

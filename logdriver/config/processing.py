"""The processing stage's log-opts: multiline joining and ``parse=json``, off by default.

The stage itself runs in ``logdriver._native.Stage``. Custom patterns are compiled here by
that same engine (Rust's ``regex``: RE2 syntax and guarantees, matching linear in the line
whatever the pattern, compiled size capped), so a pattern the stage would refuse fails
``docker run`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from logdriver._exceptions import ConfigError
from logdriver._native import MULTILINE_PRESETS, Stage, check_pattern
from logdriver.config.registry import Option, Scope
from logdriver.config.units import Explained, choice, int_between, parse_duration, size_between

MIN_TIMEOUT: Final = 0.01
MAX_TIMEOUT: Final = 60.0


def _pattern(value: str) -> str:
    try:
        check_pattern(value)
    except ValueError as exc:
        raise Explained(str(exc).splitlines()[-1].strip() or "not a usable pattern") from None
    return value


def _timeout(value: str) -> float:
    seconds = parse_duration(value)
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise ValueError(value)
    return seconds


def _processing(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Option:
    return Option(name, default, accepts, help, parse, scope=Scope.CONTAINER)


PROCESSING_OPTIONS: Final = (
    _processing(
        "multiline",
        "",
        "one of " + ", ".join(MULTILINE_PRESETS),
        "join each stack trace of this runtime into one event (per stream; off when empty)",
        choice(*MULTILINE_PRESETS),
    ),
    _processing(
        "multiline-start",
        "",
        "an RE2 regular expression",
        "a line that matches begins an event; the lines up to the next match join it",
        _pattern,
    ),
    _processing(
        "multiline-continue",
        "",
        "an RE2 regular expression",
        "a line that matches joins the event before it (with multiline-start: only such lines join)",
        _pattern,
    ),
    _processing(
        "multiline-max-lines",
        "1000",
        "an integer from 10 to 100000",
        "lines in one event; the rest goes on as the next event, both marked cut",
        int_between(10, 100_000),
    ),
    _processing(
        "multiline-max-bytes",
        "1m",
        "a size from 16k to 64m",
        "bytes in one event; the rest goes on as the next event, both marked cut",
        size_between(16_000, 64 << 20),
    ),
    _processing(
        "multiline-timeout",
        "1s",
        "a duration from 10ms to 60s",
        "the longest a line waits for the rest of its event",
        _timeout,
    ),
    _processing(
        "parse",
        "",
        "json, or empty",
        "json: a line that is a JSON object is shipped as fields (others unchanged, counted)",
        choice("json"),
    ),
)


@dataclass(frozen=True, slots=True)
class Processing:
    """A container's processing stage, typed; ``stage()`` makes its native engine."""

    preset: str | None
    start: str | None
    cont: str | None
    max_lines: int
    max_bytes: int
    timeout: float
    parse_json: bool

    def stage(self) -> Stage:
        return Stage(self)  # read by attribute: the fields here are the native stage's config


def processing(values: Mapping[str, object]) -> Processing | None:
    """The stage these parsed option values ask for, or None when it has nothing to do."""
    preset = str(values["multiline"] or "") or None
    start = str(values["multiline-start"] or "") or None
    cont = str(values["multiline-continue"] or "") or None
    if preset and (start or cont):
        raise ConfigError(
            "multiline",
            preset,
            "empty when multiline-start or multiline-continue is set (a preset or your own patterns, not both)",
        )
    parse_json = values["parse"] == "json"
    if not (preset or start or cont or parse_json):
        return None
    timeout = values["multiline-timeout"]
    assert isinstance(timeout, float)
    return Processing(
        preset=preset,
        start=start,
        cont=cont,
        max_lines=int(str(values["multiline-max-lines"])),
        max_bytes=int(str(values["multiline-max-bytes"])),
        timeout=timeout,
        parse_json=parse_json,
    )

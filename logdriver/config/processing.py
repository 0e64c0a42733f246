"""The processing stage's log-opts: multiline joining and ``parse=json``, off by default.

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
from logdriver._native import MULTILINE_PRESETS, Stage, check_pattern
from logdriver.config.registry import OptionRecord, Scope, option
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


def _container(name: str, default: str, accepts: str, help: str, parse: Callable[[str], object]) -> Any:
    return option(name, default, accepts, help, parse, scope=Scope.CONTAINER)


@dataclass(frozen=True, slots=True)
class Processing(OptionRecord):
    """A container's processing steps, typed: each field declares its log-opt. The native
    stage reads this record by attribute (``stage()``); an empty pattern or preset is unset."""

    preset: str = _container(
        "multiline",
        "",
        "one of " + ", ".join(MULTILINE_PRESETS),
        "join each stack trace of this runtime into one event (per stream; off when empty)",
        choice(*MULTILINE_PRESETS),
    )
    start: str = _container(
        "multiline-start",
        "",
        "an RE2 regular expression",
        "a line that matches begins an event; the lines up to the next match join it",
        _pattern,
    )
    cont: str = _container(
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
    parse: str = _container(
        "parse",
        "",
        "json, or empty",
        "json: a line that is a JSON object is shipped as fields (others unchanged, counted)",
        choice("json"),
    )

    @property
    def parse_json(self) -> bool:
        return self.parse == "json"

    @property
    def multiline(self) -> bool:
        return bool(self.preset or self.start or self.cont)

    def stage(self) -> Stage:
        return Stage(self)


PROCESSING_OPTIONS: Final = Processing.options()


def processing(values: Mapping[str, object]) -> Processing | None:
    """The steps these parsed option values ask for, or None when there is nothing to do."""
    made = Processing.from_values({name: "" if value is None else value for name, value in values.items()})
    if made.preset and (made.start or made.cont):
        raise ConfigError(
            "multiline",
            made.preset,
            "empty when multiline-start or multiline-continue is set (a preset or your own patterns, not both)",
        )
    return made if made.multiline or made.parse_json else None

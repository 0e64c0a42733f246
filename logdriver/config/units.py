"""Parsers for the value syntaxes Docker users already know (sizes, durations, bools)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_POWERS: Final = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_DURATION_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
# Nothing logdriver sizes or waits for comes near these; they keep arithmetic finite.
MAX_SIZE: Final = 1 << 50  # 1 PiB
MAX_DURATION: Final = 10 * 365 * 86400.0  # ten years
_TRUE: Final = frozenset({"1", "t", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "f", "false", "no", "off"})


class Explained(ValueError):
    """A bad value whose message says why, worth showing the user (a template's or regex's error)."""


class CredentialsInValue(ValueError):
    """A value that carries a credential (``user:password@`` in a URL): refused, shown only
    ``redacted``, with ``how`` to give the credential the one way the plugin takes it."""

    def __init__(self, redacted: str, how: str) -> None:
        super().__init__(how)
        self.redacted = redacted
        self.how = how


def parse_size(text: str, *, binary: bool = False) -> int:
    """``10m`` → bytes. Decimal like Docker's ``FromHumanSize`` (json-file's ``max-size``)
    unless ``binary`` (``RAMInBytes``) or the unit says ``Ki``/``Mi``."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(text)
    number, unit, iec = match.groups()
    base = 1024 if (binary or iec) else 1000
    if len(number) > 24:  # far past any real size; float() would give inf and int() OverflowError
        raise ValueError(text)
    size = float(number) * base ** _POWERS[unit.lower()]
    if size > MAX_SIZE:
        raise ValueError(text)
    return int(size)


def parse_duration(text: str) -> float:
    """Go-style duration (``500ms``, ``1m30s``, also ``7d``) → seconds; a bare number is seconds."""
    text = text.strip()
    if len(text) > 64:
        raise ValueError(text[:64])
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        if float(text) > MAX_DURATION:
            raise ValueError(text)
        return float(text)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            raise ValueError(text)
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0 or total > MAX_DURATION:
        raise ValueError(text)
    return total


def parse_bool(text: str) -> bool:
    """Go ``strconv.ParseBool`` plus yes/no/on/off."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def positive_size(value: str) -> int:
    size = parse_size(value)
    if size <= 0:
        raise ValueError(value)
    return size


def positive_int(value: str) -> int:
    number = _int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _int(value: str) -> int:
    if len(value.strip()) > 18:  # past 10**18 nothing is meant; also spares int() a 4300-digit error
        raise ValueError(value[:40])
    return int(value)


def size_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """A size parser that accepts ``minimum`` ≤ size ≤ ``maximum``."""

    def parse(value: str) -> int:
        size = parse_size(value)
        if not minimum <= size <= maximum:
            raise ValueError(value)
        return size

    return parse


def int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """An integer parser that accepts ``minimum`` ≤ n ≤ ``maximum``."""

    def parse(value: str) -> int:
        number = _int(value)
        if not minimum <= number <= maximum:
            raise ValueError(value)
        return number

    return parse


def non_negative_int(value: str) -> int:
    number = _int(value)
    if number < 0:
        raise ValueError(value)
    return number


def non_negative_duration(value: str) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(value)
    return seconds


def rate_between(minimum: float, maximum: float, *, size: bool = False) -> Callable[[str], float]:
    """A rate parser: ``1000/s`` or ``60000/m`` (``size``: ``1m/s``, a size a second), per
    second, accepting ``minimum`` ≤ rate ≤ ``maximum``."""

    def parse(value: str) -> float:
        amount, slash, per = value.strip().rpartition("/")
        if not slash or per not in ("s", "m"):
            raise ValueError(value)
        count = parse_size(amount) if size else _int(amount)
        rate = count / (60.0 if per == "m" else 1.0)
        if count <= 0 or not minimum <= rate <= maximum:
            raise ValueError(value)
        return rate

    return parse


def choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting exactly one of ``choices``."""

    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return parse


def listen_address(text: str) -> tuple[str | None, int]:
    """``host:port``, ``:port`` (every interface) or ``[v6]:port``: the host (None for
    every interface) and a port from 1 to 65535."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    host = host.removeprefix("[").removesuffix("]")
    if any(c.isspace() or c in "/[]@" for c in host):
        raise ValueError(text)
    return host or None, int(port)

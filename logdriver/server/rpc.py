"""Sans-IO: the daemon's plugin RPCs, from request bytes to typed commands and back.

The daemon POSTs JSON with no Content-Type, empty bodies for Activate and
Capabilities, and expects HTTP 200 with a JSON body for everything except a
failed ReadLogs (docker-logging-protocol.md §0 to §1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from logdriver._exceptions import RpcError

ACTIVATE_RESPONSE: Final = b'{"Implements":["LogDriver"]}'
CAPABILITIES_RESPONSE: Final = b'{"Cap":{"ReadLogs":true}}'
EMPTY_RESPONSE: Final = b"{}"


@dataclass(frozen=True, slots=True)
class Activate:
    pass


@dataclass(frozen=True, slots=True)
class Capabilities:
    pass


@dataclass(frozen=True, slots=True)
class StartLogging:
    file: str
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StopLogging:
    file: str


@dataclass(frozen=True, slots=True)
class ReadLogs:
    info: dict[str, Any]
    since_ns: int | None
    until_ns: int | None
    tail: int
    follow: bool


Command = Activate | Capabilities | StartLogging | StopLogging | ReadLogs

_GO_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))$")


def parse_go_time(text: str) -> int | None:
    """RFC 3339 with 0 to 9 fraction digits → Unix ns; Go's zero time → None (unset)."""
    match = _GO_TIME.match(text)
    if match is None:
        raise RpcError(f"bad time {text!r}")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    if year == "0001" and month == "01" and day == "01":
        return None
    offset = 0 if zulu or sign is None else (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:  # month 13, year 0, 31 February, second 60 ...
        raise RpcError(f"bad time {text!r}: {exc}") from None
    seconds = int(moment.timestamp()) - offset * 60
    nanos = int((frac or "").ljust(9, "0"))
    # Nanoseconds as a 64-bit integer reach 1677-2262; a later or earlier time (Go's reach
    # 9999 with an offset) compares the same as the nearest end of that range.
    return max(-(2**63), min(2**63 - 1, seconds * 1_000_000_000 + nanos))


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RpcError(f"request body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RpcError("request body is not a JSON object")
    return value


def _file(request: dict[str, Any]) -> str:
    file = request.get("File")
    if not isinstance(file, str) or not file.startswith("/") or "\x00" in file or len(file) > 4096:
        raise RpcError("request has no absolute 'File' path")
    return file


_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def _info(request: dict[str, Any]) -> dict[str, Any]:
    info = request.get("Info")
    if not isinstance(info, dict):
        raise RpcError("request has no 'Info' object")
    check_info(info)
    return info


def check_info(info: dict[str, Any]) -> None:
    """Info's ContainerID names directories: it must be Docker's 64 hex digits."""
    container_id = info.get("ContainerID")
    if not isinstance(container_id, str) or not _CONTAINER_ID.fullmatch(container_id):
        raise RpcError("'Info.ContainerID' must be 64 lower-case hex digits")


def parse_request(path: str, body: bytes) -> Command:
    """Decode one RPC; ``RpcError`` for malformed bodies, ``KeyError`` for unknown paths."""
    if path == "/Plugin.Activate":
        return Activate()
    if path == "/LogDriver.Capabilities":
        return Capabilities()
    if path == "/LogDriver.StartLogging":
        request = _object(body)
        return StartLogging(_file(request), _info(request))
    if path == "/LogDriver.StopLogging":
        return StopLogging(_file(_object(body)))
    if path == "/LogDriver.ReadLogs":
        request = _object(body)
        info = _info(request)
        config = request.get("Config") or {}
        if not isinstance(config, dict):
            raise RpcError("request needs a 'Config' object")
        tail = config.get("Tail", -1)
        if not isinstance(tail, int) or isinstance(tail, bool):
            raise RpcError("'Tail' must be an integer")
        tail = max(-1, tail)  # the daemon sends -1 for all; any other negative means the same
        return ReadLogs(
            info=info,
            since_ns=parse_go_time(_text(config.get("Since"))),
            until_ns=parse_go_time(_text(config.get("Until"))),
            tail=tail,
            follow=bool(config.get("Follow", False)),
        )
    raise KeyError(path)


def _text(value: object) -> str:
    if not value:
        return "0001-01-01T00:00:00Z"  # Go's zero time: unset
    if not isinstance(value, str) or len(value) > 64:
        raise RpcError("times must be RFC 3339 strings")
    return value


def error_body(message: str) -> bytes:
    return orjson.dumps({"Err": message})

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

from ._exceptions import RpcError

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
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    seconds = int(moment.timestamp()) - offset * 60
    nanos = int((frac or "").ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


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
    if not isinstance(file, str) or not file.startswith("/"):
        raise RpcError("request has no absolute 'File' path")
    return file


def parse_request(path: str, body: bytes) -> Command:
    """Decode one RPC; ``RpcError`` for malformed bodies, ``KeyError`` for unknown paths."""
    if path == "/Plugin.Activate":
        return Activate()
    if path == "/LogDriver.Capabilities":
        return Capabilities()
    if path == "/LogDriver.StartLogging":
        request = _object(body)
        info = request.get("Info")
        if not isinstance(info, dict) or not isinstance(info.get("ContainerID"), str) or not info["ContainerID"]:
            raise RpcError("request has no 'Info' with a ContainerID")
        return StartLogging(_file(request), info)
    if path == "/LogDriver.StopLogging":
        return StopLogging(_file(_object(body)))
    if path == "/LogDriver.ReadLogs":
        request = _object(body)
        info = request.get("Info")
        config = request.get("Config") or {}
        if not isinstance(info, dict) or not isinstance(config, dict):
            raise RpcError("request needs 'Info' and 'Config' objects")
        tail = config.get("Tail", -1)
        if not isinstance(tail, int):
            raise RpcError("'Tail' must be an integer")
        return ReadLogs(
            info=info,
            since_ns=parse_go_time(str(config.get("Since") or "0001-01-01T00:00:00Z")),
            until_ns=parse_go_time(str(config.get("Until") or "0001-01-01T00:00:00Z")),
            tail=tail,
            follow=bool(config.get("Follow", False)),
        )
    raise KeyError(path)


def error_body(message: str) -> bytes:
    return orjson.dumps({"Err": message})

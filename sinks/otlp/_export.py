"""Sans-IO OTLP/HTTP logs export: the request's body and headers, the verdict from the reply.

Verdicts follow the OTLP specification's rules for HTTP: 2xx is delivered, except the
records a ``partial_success`` says were rejected (OTLP does not say which: the last ones
of the request are dead-lettered, with the server's message); 429, 502, 503 and 504 are
retried, after ``Retry-After`` when the server gives one; any other status is a permanent
refusal with the server's message (a ``google.rpc.Status`` body), and a redirect is
refused too (an endpoint that moved is a configuration to fix, not to follow blindly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from logdriver.replies import retry_after

RETRYABLE: Final = frozenset({429, 502, 503, 504})
MAX_REASON: Final = 500  # characters of a server's message kept in a dead letter
# A real reply has one or two fields at each level; a reply with more is not one, and
# walking it field by field in Python is what a hostile server would make us pay for.
MAX_FIELDS: Final = 16


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one export's reply means for its ``size`` records."""

    retry: bool = False
    retry_after: float | None = None  # seconds the server asked for
    rejected: int = 0  # how many records (the last ones) are refused for good
    reason: str = ""
    unreadable: bool = False  # a 2xx whose body is not an ExportLogsServiceResponse


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's fields, (number, value), varints and length-delimited only."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        if len(out) == MAX_FIELDS:
            raise ValueError(f"more than {MAX_FIELDS} fields")
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            out.append((number, data[at : at + length]))
            at += length
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"wire type {wire}")
    if at != len(data):
        raise ValueError("truncated message")
    return out


def partial_success(body: bytes) -> tuple[int, str]:
    """(rejected_log_records, error_message) of an ExportLogsServiceResponse; ValueError if not one."""
    rejected, message = 0, ""
    for number, value in _fields(body):
        if number == 1 and isinstance(value, bytes):
            for inner, inner_value in _fields(value):
                if inner == 1 and isinstance(inner_value, int):
                    rejected = inner_value - (1 << 64) if inner_value >= 1 << 63 else inner_value
                elif inner == 2 and isinstance(inner_value, bytes):
                    message = inner_value[: 4 * MAX_REASON].decode("utf-8", "replace")[:MAX_REASON]
    return rejected, message


def status_message(body: bytes, content_type: str) -> str:
    """The message of a google.rpc.Status body (field 2), or the body as text."""
    if "protobuf" in content_type:
        try:
            for number, value in _fields(body):
                if number == 2 and isinstance(value, bytes):
                    return value[: 4 * MAX_REASON].decode("utf-8", "replace")[:MAX_REASON]
        except ValueError:
            pass
    return body[: 4 * MAX_REASON].decode("utf-8", "replace")[:MAX_REASON].strip()


def judge(status: int, body: bytes, headers: dict[str, str], size: int) -> Verdict:
    """The verdict on one export of ``size`` records."""
    content_type = headers.get("content-type", "")
    if 200 <= status < 300:
        try:
            rejected, message = partial_success(body)
        except ValueError:
            return Verdict(unreadable=True)
        if rejected > 0:
            return Verdict(rejected=min(rejected, size), reason=f"partial success: {message or 'rejected'}")
        return Verdict()
    if status in RETRYABLE:
        return Verdict(retry=True, retry_after=retry_after(headers.get("retry-after")), reason=f"HTTP {status}")
    if 300 <= status < 400:
        where = headers.get("location", "?")
        return Verdict(rejected=size, reason=f"HTTP {status}: redirected to {where[:200]}; set otlp-endpoint there")
    return Verdict(rejected=size, reason=f"HTTP {status}: {status_message(body, content_type)}")

"""Sans-IO Fluent Forward protocol v1: what the client sends and how to read replies.

- Events go out as PackedForward ``[tag, bin(entries), option]`` (or
  CompressedPackedForward with ``compressed: gzip``), entries being
  concatenated msgpack ``[time, record]``; ``time`` is an EventTime (ext 0:
  seconds, nanoseconds) or integer seconds, as Docker's fluentd driver sends
  depending on ``fluentd-sub-second-precision``.
- With ``chunk`` in the option the server answers ``{"ack": chunk}``.
- A server with ``<security>`` opens with HELO; the client answers PING with
  ``sha512(salt + hostname + nonce + shared_key)`` and checks the PONG digest.
Nothing here touches a socket: bytes in, events out (h11 style).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgpack
from zlib_ng import zlib_ng

from logdriver import LogBatch

from ._render import forward_entries


class ForwardProtocolError(Exception):
    """The server sent something the protocol does not allow (its fault, not ours)."""


def event_time(time_nano: int) -> msgpack.ExtType:
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    return msgpack.ExtType(0, struct.pack(">II", seconds & 0xFFFFFFFF, nanos))


# A line's own record fields, with the bit that tells the native encoder an extra replaces it.
_LINE_FIELDS: Final = {
    "source": 1,
    "log": 2,
    "partial_message": 4,
    "partial_id": 8,
    "partial_ordinal": 16,
    "partial_last": 32,
}


def new_chunk_id() -> str:
    return base64.b64encode(os.urandom(16)).decode()


class EntryEncoder:
    """Concatenated msgpack ``[time, record]`` entries for one container, a batch per call.

    The record is the one Docker's fluentd driver sends: ``container_id``,
    ``container_name``, ``source``, ``log``, the ``partial_*`` fields of a line not
    rejoined whole, then the extras (labels, env); an extra named like a record field
    replaces its value, as Docker's map assignment does. The container's constant
    fields are packed once; the line's own are written in Rust (``native/``).
    tests/sinks/fluentd_reference.py is the plain-Python reference it must match.
    """

    def __init__(
        self, container_id: str, container_name: str, extras: Mapping[str, str], sub_second: bool = True
    ) -> None:
        packer = msgpack.Packer(use_bin_type=True)
        head = {"container_id": container_id, "container_name": container_name}
        head = {k: v for k, v in head.items() if k not in extras}
        self._head = b"".join(packer.pack(k) + packer.pack(v) for k, v in head.items())
        self._head_pairs = len(head)
        self._tail = b"".join(packer.pack(k) + packer.pack(v) for k, v in extras.items())
        self._tail_pairs = len(extras)
        self._overridden = sum(bit for key, bit in _LINE_FIELDS.items() if key in extras)
        self._sub_second = sub_second

    def encode(self, batch: LogBatch) -> bytes:
        return forward_entries(
            batch.columns(),
            self._head,
            self._head_pairs,
            self._tail,
            self._tail_pairs,
            self._sub_second,
            self._overridden,
        )


def packed_forward(tag: str, entries: bytes, size: int, chunk: str | None, compress: bool) -> bytes:
    """One PackedForward (or CompressedPackedForward) message."""
    option: dict[str, object] = {"size": size}
    if chunk is not None:
        option["chunk"] = chunk
    if compress:
        # zlib-ng at level 1: a tenth of stdlib gzip's default CPU, and log batches still shrink ~10x.
        entries = zlib_ng.compress(entries, 1, 31)  # wbits 31: a gzip member
        option["compressed"] = "gzip"
    message: bytes = msgpack.packb([tag, entries, option], use_bin_type=True)
    return message


@dataclass(frozen=True, slots=True)
class Helo:
    nonce: bytes
    auth_salt: bytes
    keepalive: bool


@dataclass(frozen=True, slots=True)
class Pong:
    auth_ok: bool
    reason: str
    server_hostname: str
    digest: str


@dataclass(frozen=True, slots=True)
class Ack:
    chunk: str


Reply = Helo | Pong | Ack


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ForwardProtocolError(f"expected bytes, got {type(value).__name__}")


class ReplyReader:
    """Feed bytes from the server; take decoded replies."""

    # An ack is about 30 bytes, HELO and PONG well under 1 KiB. A server's reply is decoded
    # into Python objects on the event loop: 1 MiB of one-byte empty arrays would be a
    # million lists, so the buffer is small.
    def __init__(self, max_buffer: int = 64 << 10) -> None:
        self._unpacker = msgpack.Unpacker(raw=True, max_buffer_size=max_buffer)

    def receive_data(self, data: bytes) -> list[Reply]:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull as exc:
            raise ForwardProtocolError("reply too large") from exc
        return [self._convert(obj) for obj in self._unpacker]

    @staticmethod
    def _convert(obj: object) -> Reply:
        if isinstance(obj, dict) and b"ack" in obj:
            return Ack(_as_bytes(obj[b"ack"]).decode())
        if isinstance(obj, list) and obj and obj[0] == b"HELO" and len(obj) >= 2 and isinstance(obj[1], dict):
            options = obj[1]
            return Helo(
                _as_bytes(options.get(b"nonce", b"")),
                _as_bytes(options.get(b"auth", b"")),
                bool(options.get(b"keepalive", True)),
            )
        if isinstance(obj, list) and len(obj) >= 5 and obj[0] == b"PONG":
            return Pong(
                bool(obj[1]),
                _as_bytes(obj[2]).decode(errors="replace"),
                _as_bytes(obj[3]).decode(errors="replace"),
                _as_bytes(obj[4]).decode(errors="replace"),
            )
        raise ForwardProtocolError(f"unexpected reply {obj!r:.80}")


def _hex_sha512(*parts: bytes) -> str:
    return hashlib.sha512(b"".join(parts)).hexdigest()


def ping(
    helo: Helo, hostname: str, shared_key: str, username: str = "", password: str = "", salt: bytes | None = None
) -> tuple[bytes, bytes]:
    """The PING for a HELO, and the salt to check the PONG with."""
    salt = salt if salt is not None else os.urandom(16).hex().encode()
    digest = _hex_sha512(salt, hostname.encode(), helo.nonce, shared_key.encode())
    password_digest = _hex_sha512(helo.auth_salt, username.encode(), password.encode()) if username else ""
    message = msgpack.packb(["PING", hostname, salt, digest, username, password_digest], use_bin_type=True)
    return message, salt


def check_pong(pong: Pong, helo: Helo, salt: bytes, shared_key: str, own_hostname: str) -> None:
    """Raise ForwardProtocolError unless the server authenticated itself (and us)."""
    if not pong.auth_ok:
        raise ForwardProtocolError(f"handshake refused by the server: {pong.reason}")
    expected = _hex_sha512(salt, pong.server_hostname.encode(), helo.nonce, shared_key.encode())
    if pong.digest != expected:
        raise ForwardProtocolError("server's shared-key digest does not match: wrong key or not the server")
    if pong.server_hostname == own_hostname:
        raise ForwardProtocolError("server has our hostname: a loop back to ourselves?")

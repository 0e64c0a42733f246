"""The Elasticsearch bulk encoder in plain Python: the reference ``native/src/bulk.rs``
is checked against (byte for byte), as ``logdriver.testing.entries`` is for the decoder."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Sequence

import orjson
import xxhash

from logdriver import LogRecord

NANOS_PER_DAY = 86_400 * 1_000_000_000


def document_id(container_id: bytes, record: LogRecord, repeat: int) -> str:
    data = b"".join(
        [
            container_id,
            b"\0",
            record.time_nano.to_bytes(8, "little", signed=True),
            record.source.encode(),
            b"\0",
            repeat.to_bytes(4, "little"),
            record.line,
        ]
    )
    return base64.urlsafe_b64encode(xxhash.xxh3_128_digest(data)).decode().rstrip("=")


def rfc3339_nanos(time_nano: int) -> str:
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def bulk_lines(
    records: Sequence[LogRecord], container_id: bytes, action_prefix: Callable[[int], bytes], doc_suffix: bytes
) -> bytes:
    parts: list[bytes] = []
    seen: dict[tuple[int, str, bytes], int] = {}
    for record in records:
        key = (record.time_nano, record.source, record.line)
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        parts.append(action_prefix(record.time_nano // NANOS_PER_DAY))
        parts.append(document_id(container_id, record, repeat).encode() + b'"}}\n')
        document: dict[str, object] = {
            "@timestamp": rfc3339_nanos(record.time_nano),
            "message": record.line.decode("utf-8", "replace"),
            "stream": record.source,
        }
        if record.partial is not None:
            partial = record.partial
            document["partial"] = {"id": partial.id, "ordinal": partial.ordinal, "last": partial.last}
        parts.append(orjson.dumps(document)[:-1] + doc_suffix)
    return b"".join(parts)

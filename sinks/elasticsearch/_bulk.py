"""Sans-IO Elasticsearch/OpenSearch bulk: the request for a batch, the verdict from the reply.

- Every line becomes a ``create`` with a deterministic ``_id`` (a hash of the
  container, time, stream and bytes of the line), so a batch sent twice,
  after a timeout or a replay from the disk spool, can never index a line
  twice: the copy is answered 409, which counts as delivered.
- Documents use ECS names (``@timestamp`` with nanoseconds, ``message``,
  ``container.*``, ``host.name``, ``labels``), plus ``stream`` as Elastic's
  container integrations name it and ``partial`` for a line still in pieces.
- Item verdicts follow what Vector and elasticsearch-py do: 429 and 5xx are
  retried, 409 is a duplicate (delivered), any other failure is rejected for
  good with the server's reason (the pipeline dead-letters it).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from logdriver import LogRecord


def document_id(container_id: str, record: LogRecord, repeat: int = 0) -> str:
    """20 URL-safe characters; ``repeat`` tells apart identical lines at the same nanosecond."""
    digest = hashlib.blake2b(digest_size=15)
    digest.update(f"{container_id}\0{record.time_nano}\0{record.source}\0{repeat}\0".encode())
    digest.update(record.line)
    return base64.urlsafe_b64encode(digest.digest()).decode()


def rfc3339_nanos(time_nano: int) -> str:
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a container's documents go: a data stream, or an index name with
    ``strftime`` date patterns taken from each line's own time (UTC)."""

    name: str
    data_stream: bool
    pipeline: str = ""

    def index_for(self, time_nano: int) -> str:
        if self.data_stream or "%" not in self.name:
            return self.name
        moment = datetime.datetime.fromtimestamp(time_nano // 1_000_000_000, datetime.UTC)
        return moment.strftime(self.name).lower()


class BulkEncoder:
    """Turns batches of one container's lines into bulk request bodies."""

    def __init__(
        self,
        container_id: str,
        fields: Mapping[str, Any],
        target: Target,
    ) -> None:
        self.container_id = container_id
        self.target = target
        # The per-container part of every document, serialised once ("," + members, no braces).
        self._constant = orjson.dumps(dict(fields))[1:-1]
        self._action_cache: dict[str, bytes] = {}

    def _action_prefix(self, index: str) -> bytes:
        prefix = self._action_cache.get(index)
        if prefix is None:
            meta: dict[str, str] = {"_index": index}
            if self.target.pipeline:
                meta["pipeline"] = self.target.pipeline
            prefix = b'{"create":' + orjson.dumps(meta)[:-1] + b',"_id":"'
            if len(self._action_cache) > 64:
                self._action_cache.clear()
            self._action_cache[index] = prefix
        return prefix

    def encode(self, records: Sequence[LogRecord]) -> bytes:
        """NDJSON: an action line and a document line per record, each ending in a newline."""
        parts: list[bytes] = []
        seen: dict[tuple[int, str, bytes], int] = {}
        for record in records:
            key = (record.time_nano, record.source, record.line)
            repeat = seen.get(key, 0)
            seen[key] = repeat + 1
            parts.append(self._action_prefix(self.target.index_for(record.time_nano)))
            parts.append(document_id(self.container_id, record, repeat).encode())
            parts.append(b'"}}\n')
            document: dict[str, Any] = {
                "@timestamp": rfc3339_nanos(record.time_nano),
                "message": record.line.decode("utf-8", "replace"),
                "stream": record.source,
            }
            if record.partial is not None:
                partial = record.partial
                document["partial"] = {"id": partial.id, "ordinal": partial.ordinal, "last": partial.last}
            body = orjson.dumps(document)
            parts.append(body[:-1] + (b"," + self._constant if self._constant else b"") + b"}\n")
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class BulkVerdict:
    """Per-record outcome of one bulk request (indexes into the batch)."""

    retry: list[int]
    rejected: dict[int, str]
    duplicates: int = 0


def _reason(error: Any) -> str:
    if isinstance(error, Mapping):
        kind = error.get("type", "error")
        reason = error.get("reason", "")
        caused = error.get("caused_by")
        text = f"{kind}: {reason}"
        if isinstance(caused, Mapping):
            text += f" (caused by {caused.get('type', '')}: {caused.get('reason', '')})"
        return text[:1000]
    return str(error)[:1000]


def item_verdicts(response: Mapping[str, Any], size: int) -> BulkVerdict:
    """Verdicts from a 200 bulk response filtered with ``filter_path=errors,items.*.status,items.*.error``."""
    if not response.get("errors"):
        return BulkVerdict([], {})
    items = response.get("items")
    if not isinstance(items, list) or len(items) != size:
        # Positions cannot be trusted: send it all again (create + _id keeps that safe).
        return BulkVerdict(list(range(size)), {})
    retry: list[int] = []
    rejected: dict[int, str] = {}
    duplicates = 0
    for index, item in enumerate(items):
        result: Any = next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
        status = int(result.get("status", 0)) if isinstance(result, Mapping) else 0
        if 200 <= status < 300:
            continue
        if status == 409:
            duplicates += 1  # already indexed by an earlier attempt
        elif status == 429 or status >= 500 or status == 0:
            retry.append(index)
        else:
            rejected[index] = f"{status} {_reason(result.get('error'))}"
    return BulkVerdict(retry, rejected, duplicates)

"""Sans-IO Elasticsearch/OpenSearch bulk: the request for a batch, the verdict from the reply.

- Every line becomes a ``create`` with a deterministic ``_id`` (XXH3-128 of the
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

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from logdriver import LogBatch

from ._render import bulk_lines

NANOS_PER_DAY: Final = 86_400 * 1_000_000_000


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
    """Turns batches of one container's lines into bulk request bodies (in Rust:
    ``native/src/bulk.rs``; tests/sinks/es_reference.py is the Python reference)."""

    def __init__(self, container_id: str, fields: Mapping[str, Any], target: Target) -> None:
        self.container_id = container_id.encode()
        self.target = target
        constant = orjson.dumps(dict(fields))[1:-1]  # the per-container members, no braces
        self._suffix = (b"," + constant if constant else b"") + b"}\n"
        self._prefixes: dict[str, bytes] = {}

    def action_prefix(self, day: int) -> bytes:
        """``{"create":{"_index":..,["pipeline":..,]"_id":"`` for a UTC day number."""
        index = self.target.index_for(day * NANOS_PER_DAY)
        prefix = self._prefixes.get(index)
        if prefix is None:
            meta: dict[str, str] = {"_index": index}
            if self.target.pipeline:
                meta["pipeline"] = self.target.pipeline
            prefix = b'{"create":' + orjson.dumps(meta)[:-1] + b',"_id":"'
            if len(self._prefixes) > 64:
                self._prefixes.clear()
            self._prefixes[index] = prefix
        return prefix

    def encode(self, batch: LogBatch) -> bytes:
        """NDJSON: an action line and a document line per line, each ending in a newline."""
        return bulk_lines(batch.columns(), self.container_id, self.action_prefix, self._suffix)


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

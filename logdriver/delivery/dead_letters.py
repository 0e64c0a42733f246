"""Dead letters: lines a sink rejected for good, kept with the reason, bounded.

One JSON-lines file per sink and container, ``<state>/deadletter/<sink>/<container id>.jsonl``;
each line is logdriver's JSON record (``native/lines/src/record.rs``, as the file sink
and Kafka write it) plus ``container_id``, ``sink`` and ``reason``. Past ``max_bytes``
a container's file becomes ``.1`` (replacing the previous one): one container's
refusals never rotate a neighbour's dead letters away, and a container costs at most
twice ``max_bytes`` per sink, charged to its share of the plugin's disk budget.
Files are 0600 (log lines).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

import orjson

from logdriver._files import append_private, makedirs_private
from logdriver._native import LogBatch, json_records
from logdriver.delivery.budget import Budget, unlimited

log = logging.getLogger("logdriver.deadletter")

MAX_BYTES = 16 << 20  # per sink and container, before its file becomes .1 (so twice this at most)


class DeadLetters:
    def __init__(self, directory: str, sink: str, max_bytes: int = MAX_BYTES, budget: Budget | None = None) -> None:
        self.directory = os.path.join(directory, sink)
        self.sink = sink
        self.max_bytes = max_bytes
        self.budget = budget or unlimited("disk")
        self.written = 0
        self.lost = 0  # lines that could not be written (disk full, over the disk budget)
        # What earlier runs left (and an older version's one file per sink) counts from the start.
        found = [os.path.join(self.directory, name) for name in _names(self.directory)]
        self.budget.take(sum(_size(path) for path in [*found, os.path.join(directory, f"{sink}.jsonl")]))

    def path(self, container_id: str) -> str:
        return os.path.join(self.directory, f"{container_id}.jsonl")

    def write(self, batch: LogBatch, container_id: str, reasons: Sequence[str]) -> None:
        """Append the batch's lines, ``reasons[i]`` with line ``i``, in one write."""
        data = _json_lines(batch, container_id, self.sink, reasons)
        path = self.path(container_id)
        share = self.budget.share(container_id)
        try:
            makedirs_private(self.directory)
            current = _size(path)
            if current + len(data) > self.max_bytes and current:
                freed = _size(path + ".1")
                os.replace(path, path + ".1")
                share.give(freed)
            if not share.try_take(len(data)):
                raise OSError(errno.ENOSPC, "over the container's share of the disk budget (LOGDRIVER_DISK_MAX_BYTES)")
            append_private(path, data)
            self.written += len(batch)
        except OSError as exc:
            self.lost += len(batch)
            log.error("cannot write dead letters to %s (%d lines lost): %s", path, len(batch), exc.strerror)


CHUNK = 1000  # lines per write call: a few milliseconds of rendering


def _json_lines(batch: LogBatch, container_id: str, sink: str, reasons: Sequence[str]) -> bytes:
    """logdriver's JSON record of each line (as the file sink writes it, rendered by the
    same code), plus its container, sink and reason.

    The caller hands over at most ``CHUNK`` lines per call, so that a sink rejecting
    everything cannot hold the event loop for long; lines sharing a reason (most of a
    batch) are rendered in one call.
    """
    out = []
    start = 0
    while start < len(reasons):
        stop = start + 1
        while stop < len(reasons) and reasons[stop] == reasons[start]:
            stop += 1
        fields = orjson.dumps({"container_id": container_id, "sink": sink, "reason": reasons[start]})
        out.append(json_records(batch.slice(start, stop), b"," + fields[1:] + b"\n"))
        start = stop
    return b"".join(out)


def _names(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0

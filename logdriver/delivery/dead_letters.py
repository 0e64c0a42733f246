"""Dead letters: lines a sink rejected for good, kept with the reason, bounded.

One JSON-lines file per sink under ``<state>/deadletter/``; each line is
logdriver's JSON record (``native/lines/src/record.rs``, as the file sink and Kafka
write it) plus ``container_id``, ``sink`` and ``reason``. Past ``max_bytes`` the
file becomes ``.1`` (replacing the previous one), so a sink that rejects everything
costs at most twice ``max_bytes``, and all of it counts against the plugin's disk
budget. Files are 0600 (log lines).
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

MAX_BYTES = 64 << 20  # per sink, before the file becomes .1 (so twice this at most)


class DeadLetters:
    def __init__(self, directory: str, sink: str, max_bytes: int = MAX_BYTES, budget: Budget | None = None) -> None:
        self.path = os.path.join(directory, f"{sink}.jsonl")
        self.directory = directory
        self.sink = sink
        self.max_bytes = max_bytes
        self.budget = budget or unlimited("disk")
        self.written = 0
        self.lost = 0  # lines that could not be written (disk full, over the disk budget)
        self._charged = sum(_size(p) for p in (self.path, self.path + ".1"))
        self.budget.take(self._charged)

    def write(self, batch: LogBatch, container_id: str, reasons: Sequence[str]) -> None:
        """Append the batch's lines, ``reasons[i]`` with line ``i``, in one write."""
        data = _json_lines(batch, container_id, self.sink, reasons)
        try:
            makedirs_private(self.directory)
            current = _size(self.path)
            if current + len(data) > self.max_bytes and current:
                freed = _size(self.path + ".1")
                os.replace(self.path, self.path + ".1")
                self.budget.give(freed)
                self._charged -= freed
            if not self.budget.try_take(len(data)):
                raise OSError(errno.ENOSPC, "over the plugin's disk budget (LOGDRIVER_DISK_MAX_BYTES)")
            self._charged += len(data)
            append_private(self.path, data)
            self.written += len(batch)
        except OSError as exc:
            self.lost += len(batch)
            log.error("cannot write dead letters to %s (%d lines lost): %s", self.path, len(batch), exc.strerror)


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


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0

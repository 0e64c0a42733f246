"""Dead letters: lines a sink rejected for good, kept with the reason, bounded.

One JSON-lines file per sink under ``<state>/deadletter/``; each line is the
record (as the file sink writes it) plus ``container_id``, ``sink`` and
``reason``. Past ``max_bytes`` the file becomes ``.1`` (replacing the previous
one), so a sink that rejects everything costs at most twice ``max_bytes``.
"""

from __future__ import annotations

import logging
import os

import orjson

from ._native import Batch

log = logging.getLogger("logdriver.deadletter")


class DeadLetters:
    def __init__(self, directory: str, sink: str, max_bytes: int = 64 << 20) -> None:
        self.path = os.path.join(directory, f"{sink}.jsonl")
        self.directory = directory
        self.sink = sink
        self.max_bytes = max_bytes
        self.written = 0

    def write(self, batch: Batch, container_id: str, reason: str) -> None:
        suffix = b"," + orjson.dumps({"container_id": container_id, "sink": self.sink, "reason": reason})[1:] + b"\n"
        data = batch.json_lines(suffix)
        try:
            os.makedirs(self.directory, exist_ok=True)
            if os.path.exists(self.path) and os.path.getsize(self.path) + len(data) > self.max_bytes:
                os.replace(self.path, self.path + ".1")
            with open(self.path, "ab") as handle:
                handle.write(data)
            self.written += len(batch)
        except OSError as exc:
            log.error("cannot write dead letters to %s (%d lines lost): %s", self.path, len(batch), exc)

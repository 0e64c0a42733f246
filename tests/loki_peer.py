"""VictoriaLogsPeer: VictoriaLogs, built by scripts/build-victorialogs.sh, as a subprocess.
Not a fake: a released log database that takes Loki's push API as Loki does (protobuf +
snappy, JSON + gzip, structured metadata), queried back with LogsQL.

A stream's labels become its ``_stream`` and fields of each record; structured metadata
become fields; the line is ``_msg``. Records are searchable about a second after a push
(``count`` and ``records`` wait for them).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .ports import free_port

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build-victorialogs.sh"


def victorialogs_binary() -> str:
    return subprocess.run([str(BUILD)], check=True, capture_output=True, text=True).stdout.strip()


class VictoriaLogsPeer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/insert/loki/api/v1/push"

    def start(self, timeout: float = 30.0) -> VictoriaLogsPeer:
        binary = victorialogs_binary()
        with open(self.workdir / "victorialogs.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"-storageDataPath={self.workdir / 'data'}",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-loggerLevel=WARN",
                    "-retentionPeriod=100y",  # the tests' lines carry 2025 times
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.workdir / "victorialogs.log").read_text()[-2000:])
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def query(self, logsql: str, limit: int = 0) -> list[dict[str, Any]]:
        """Rows of a LogsQL query, one dict each (``_msg``, ``_time``, ``_stream``, fields)."""
        form = {"query": logsql, **({"limit": str(limit)} if limit else {})}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/select/logsql/query",
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return [json.loads(line) for line in reply.read().splitlines() if line.strip()]

    def count(self, logsql: str = "*") -> int:
        rows = self.query(f"{logsql} | stats count() n")
        return int(rows[0]["n"]) if rows else 0

    def wait_for(self, count: int, logsql: str = "*", timeout: float = 60.0) -> int:
        """Poll until ``count`` records match (or the time is up): what matched last."""
        deadline = time.monotonic() + timeout
        seen = self.count(logsql)
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.3)
            seen = self.count(logsql)
        return seen

    def flush(self) -> None:
        """Make what was pushed searchable now (VictoriaLogs' own debug endpoint)."""
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/internal/force_flush", timeout=30).read()

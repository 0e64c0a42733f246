"""CollectorPeer: the OpenTelemetry Collector (core OTLP receiver, contrib file exporter),
built by scripts/build-otelcol.sh, as a subprocess. Not a fake: the Collector is the
reference OTLP server, used as released.

It writes each export it receives as one OTLP/JSON line (``{"resourceLogs": [...]}``) to
a file, which ``records()`` reads back: each record with its resource's attributes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from .ports import free_port

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build-otelcol.sh"


def collector_binary() -> str:
    return subprocess.run([str(BUILD)], check=True, capture_output=True, text=True).stdout.strip()


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP/JSON KeyValues as a dict of their plain values."""
    out: dict[str, Any] = {}
    for item in items or []:
        value = item.get("value", {})
        out[item["key"]] = next(iter(value.values()), None) if value else None
    return out


_RECORD_KEY = b'"observedTimeUnixNano"'  # once per exported log record


class CollectorPeer:
    def __init__(
        self, workdir: Path, tls: tuple[str, str] | None = None, client_ca: str | None = None, protocol: str = "http"
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.starts = 0  # each start exports to a file of its own (the exporter may truncate)
        self.port = free_port()
        self.tls = tls  # (cert, key) for an https receiver
        self.client_ca = client_ca  # with tls: clients must show a certificate this CA signed
        self.protocol = protocol  # the receiver's protocol: "http" (OTLP/HTTP) or "grpc"
        self.process: subprocess.Popen[bytes] | None = None
        self._counted: dict[Path, tuple[int, int]] = {}  # export file -> (bytes read, records in them)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> CollectorPeer:
        self.starts += 1
        output = self.workdir / f"exported-{self.starts}.jsonl"
        tls = ""
        if self.tls:
            tls = f"\n        tls:\n          cert_file: {self.tls[0]}\n          key_file: {self.tls[1]}"
            if self.client_ca:
                tls += f"\n          client_ca_file: {self.client_ca}"
        config = self.workdir / "collector.yaml"
        config.write_text(
            f"""receivers:
  otlp:
    protocols:
      {self.protocol}:
        endpoint: 127.0.0.1:{self.port}{tls}
exporters:
  file:
    path: {output}
processors: {{}}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
"""
        )
        binary = collector_binary()
        with open(self.workdir / "collector.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen([binary, "--config", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.workdir / "collector.log").read_text()[-2000:])
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def exports(self) -> list[dict[str, Any]]:
        out = []
        for start in range(1, self.starts + 1):
            path = self.workdir / f"exported-{start}.jsonl"
            if path.exists():
                out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return out

    def count(self) -> int:
        """How many records were exported, without parsing them (for benchmarks): each file is
        read on from where the last call stopped, so polling a growing export stays cheap."""
        total = 0
        for start in range(1, self.starts + 1):
            path = self.workdir / f"exported-{start}.jsonl"
            if not path.exists():
                continue
            offset, records = self._counted.get(path, (0, 0))
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
            # Up to the end of the last whole key (the file may end mid-write): str.count counts
            # only occurrences wholly inside the range, and the next read starts past them.
            cut = data.rfind(_RECORD_KEY) + len(_RECORD_KEY) if _RECORD_KEY in data else 0
            records += data.count(_RECORD_KEY, 0, cut)
            self._counted[path] = (offset + cut, records)
            total += records
        return total

    def records(self) -> list[dict[str, Any]]:
        """Every log record, each with ``resource`` (its resource's attributes) and ``attrs``."""
        out = []
        for export in self.exports():
            for resource_logs in export.get("resourceLogs", []):
                resource = attributes(resource_logs.get("resource", {}).get("attributes", []))
                for scope_logs in resource_logs.get("scopeLogs", []):
                    for record in scope_logs.get("logRecords", []):
                        body = record.get("body", {})
                        out.append(
                            record
                            | {
                                "resource": resource,
                                "attrs": attributes(record.get("attributes", [])),
                                "text": next(iter(body.values()), "") if body else "",
                            }
                        )
        return out

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(records := self.records()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return records

    def __enter__(self) -> CollectorPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

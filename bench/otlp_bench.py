"""OTLP: logdriver against a plain OTLP/HTTP client, into one real OpenTelemetry Collector, same run.

- ``seq 1 N`` in a container logging through logdriver's otlp sink (``overflow=block``),
  timed from ``docker start`` until the Collector's exported file holds N records;
- the reference: one Python process posting the same records, in requests of the same
  size as the plugin's (``batch-max-entries``), gzip-compressed while timed; the protobuf
  bodies are made before its clock starts (with logdriver's own renderer), so the
  reference's CPU is compression, HTTP and nothing else.

- the plugin again with ``sinks=discard``: what reading, decoding and the ``docker logs``
  store cost before any sink, so the OTLP sink's own share is the difference.

Printed: lines/s, CPU seconds per 1M lines of the plugin and of the reference, and their
ratio (target: plugin <= 1.5x), then the sink's share (plugin minus discard) against the
reference. Then 50 containers at ~100 lines/s into the same
Collector: connections the plugin holds to it, and lines per request.

Usage: python bench/otlp_bench.py [--runs 3] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx
from zlib_ng import zlib_ng

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, start_plugin  # bench/bench.py, beside this file
from logdriver import LogBatch, LogRecord
from logdriver_sinks.otlp import SCOPE
from logdriver_sinks.otlp._render import encode_resource, export_request, resource_logs
from tests.otel_peer import CollectorPeer
from tests.ports import free_port

PLUGIN = "logdriver-otlp-bench"
BATCH = 5000  # the pipeline's batch-max-entries default


def reference_bodies(lines: int) -> list[bytes]:
    resource = encode_resource([("container.id", "c" * 64), ("service.name", "bench")])
    bodies = []
    now = time.time_ns()
    for start in range(1, lines + 1, BATCH):
        records = [LogRecord("stdout", now + i, str(i).encode()) for i in range(start, min(start + BATCH, lines + 1))]
        batch = LogBatch.from_tuples([(r.source, r.time_nano, r.line, None) for r in records])
        bodies.append(export_request([resource_logs(batch.columns(), resource, SCOPE)]))
    return bodies


def reference(collector: CollectorPeer, bodies: list[bytes], lines: int) -> tuple[float, float]:
    """(seconds until the Collector holds every record, CPU seconds) to gzip and post every
    body, one after the other: the same end as the plugin's runs."""
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
    with httpx.Client() as client:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            compressed = zlib_ng.compress(body, 1, 31)
            client.post(collector.endpoint + "/v1/logs", content=compressed, headers=headers).raise_for_status()
        used = time.process_time() - cpu
        wait_for(collector, lines)
        return time.perf_counter() - started, used


def discarded(plugin: subprocess.Popen[bytes], lines: int) -> tuple[float, float]:
    """The same container with ``sinks=discard``: timed until it has exited and the plugin
    has read its FIFO to the end (StopLogging answered)."""
    container = docker("create", f"--log-driver={PLUGIN}", "--log-opt=sinks=discard", IMAGE, "seq", "1", str(lines))
    before, started = cpu_seconds(plugin.pid), time.perf_counter()
    docker("start", container)
    docker("wait", container)
    docker("rm", "-f", container)
    return time.perf_counter() - started, cpu_seconds(plugin.pid) - before


def wait_for(collector: CollectorPeer, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while collector.count() < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Collector holds {collector.count()} of {count}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="logdriver-otlp-bench-", dir="/var/tmp")
    metrics = f"127.0.0.1:{free_port()}"
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_METRICS_ADDRESS=metrics, LOGDRIVER_GC_INTERVAL="5s")
    bodies = reference_bodies(args.lines)
    rows: dict[str, list[tuple[float, float]]] = {"logdriver": [], "reference": [], "discard": []}
    try:
        for run in range(args.runs):
            with CollectorPeer(Path(state) / f"collector-{run}-plugin") as collector:
                opts = [
                    "--log-opt=sinks=otlp",
                    f"--log-opt=otlp-endpoint={collector.endpoint}",
                    "--log-opt=overflow=block",
                ]
                container = docker("create", f"--log-driver={PLUGIN}", *opts, IMAGE, "seq", "1", str(args.lines))
                before, started = cpu_seconds(plugin.pid), time.perf_counter()
                docker("start", container)
                wait_for(collector, args.lines)
                rows["logdriver"].append((time.perf_counter() - started, cpu_seconds(plugin.pid) - before))
                docker("rm", "-f", container)
            with CollectorPeer(Path(state) / f"collector-{run}-reference") as collector:
                rows["reference"].append(reference(collector, bodies, args.lines))
            rows["discard"].append(discarded(plugin, args.lines))
        print(f"\n## seq 1 {args.lines} into one Collector (median of {args.runs})")
        print(f"{'':<12}{'lines/s':>12}{'CPU s / 1M lines':>18}")
        cpu = {}
        for name, values in rows.items():
            seconds = statistics.median(v[0] for v in values)
            cpu[name] = statistics.median(v[1] for v in values) * 1_000_000 / args.lines
            print(f"{name:<12}{args.lines / seconds:>12,.0f}{cpu[name]:>18.2f}")
        print(f"plugin CPU per line x{cpu['logdriver'] / cpu['reference']:.2f} the reference's (target <= 1.5)")
        share = cpu["logdriver"] - cpu["discard"]
        print(
            f"the otlp sink's share (logdriver - discard): {share:.2f} s,"
            f" x{share / cpu['reference']:.2f} the reference's"
        )
        many(plugin, metrics, state)
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        subprocess.run(["rm", "-rf", state], check=False)


def many(plugin: subprocess.Popen[bytes], metrics: str, state: str, containers: int = 50) -> None:
    """50 containers at ~100 lines/s each into one Collector, for 20 s."""
    with CollectorPeer(Path(state) / "collector-many") as collector:
        opts = ["--log-opt=sinks=otlp", f"--log-opt=otlp-endpoint={collector.endpoint}"]
        script = "while true; do for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; sleep 0.1; done"
        names = [
            docker("run", "-d", "--network", "none", f"--log-driver={PLUGIN}", *opts, IMAGE, "sh", "-c", script)
            for _ in range(containers)
        ]
        try:
            time.sleep(20)
            port = collector.endpoint.rsplit(":", 1)[1]
            connections = sum(
                1
                for line in subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout.splitlines()
                if f":{port} " in line and f"pid={plugin.pid}," in line
            )
            text = urllib.request.urlopen(f"http://{metrics}/metrics").read().decode()
            values = {
                line.split()[0]: float(line.split()[1])
                for line in text.splitlines()
                if line.startswith("logdriver_sink_request") and 'sink="otlp"' in line
            }
            requests = values.get('logdriver_sink_requests_total{sink="otlp"}', 0)
            lines = values.get('logdriver_sink_request_lines_total{sink="otlp"}', 0)
            print(f"\n## {containers} containers x ~100 lines/s into one Collector, 20 s")
            print(f"connections from the plugin: {connections}; lines per request: {lines / max(requests, 1):,.0f}")
        finally:
            docker("rm", "-f", *names)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()

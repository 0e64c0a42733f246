"""Loki: logdriver against a plain protobuf + snappy push client, into one real VictoriaLogs
(it takes Loki's push API), same run.

- ``seq 1 N`` in a container logging through the Loki drop-in (``loki-url`` alone, and
  ``overflow=block``), timed from ``docker start`` until VictoriaLogs holds N records;
- the reference: one Python process pushing the same records in pushes of the same size
  as the plugin's (``loki-batch-size``, 1 MiB), snappy-compressed while timed; the protobuf
  bodies are made before its clock starts, so its CPU is compression, HTTP and nothing else;
- the plugin again with ``sinks=discard``: what reading, decoding and the ``docker logs``
  store cost before any sink, so the Loki sink's own share is the difference;
- the sink alone: its real pipeline in this process, fed the same lines decoded, without
  dockerd (which takes a core's share of two beside VictoriaLogs in the plugin's rows).

Printed: lines/s of each and the plugin's ratio to the reference (target >= 0.8), CPU
microseconds per line of the plugin (target <= 2.5), and the sink's share. Then 50
containers at ~100 lines/s into the same VictoriaLogs: connections the plugin holds to it,
and lines per push (target >= 1,000). Then 1,000 short-lived containers (grafana/loki#17718):
what the plugin holds after them against before (descriptors, RSS, clients, pipelines).

Usage: python bench/loki_bench.py [--runs 3] [--lines 1000000]
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
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, start_plugin  # bench/bench.py, beside this file
from logdriver import LogBatch
from logdriver.testing import close_clients, open_pipeline, running
from logdriver_sinks.loki import LokiSink
from logdriver_sinks.loki._render import proto_stream, snappy
from tests.integration.churn import fds_and_rss, metric_sum, start_short_lived
from tests.loki_peer import VictoriaLogsPeer
from tests.ports import free_port

PLUGIN = "logdriver-loki-bench"
BATCH = 20000  # the Loki sink's batch-max-entries default (1 MiB of seq's lines holds more)


def reference_bodies(lines: int) -> list[bytes]:
    """PushRequests of BATCH entries each, one stream, the container id as metadata."""
    bodies = []
    now = time.time_ns()
    for start in range(1, lines + 1, BATCH):
        rows = [("stdout", now + i, str(i).encode(), None) for i in range(start, min(start + BATCH, lines + 1))]
        batch = LogBatch.from_tuples(rows)
        bodies.append(proto_stream(batch.columns(), '{job="reference"}', [("container_id", "c" * 64)], False))
    return bodies


def reference(peer: VictoriaLogsPeer, bodies: list[bytes], lines: int) -> tuple[float, float]:
    """(seconds until VictoriaLogs holds every record, CPU seconds) to snappy and push every
    body, one after the other: the same end as the plugin's runs."""
    headers = {"content-type": "application/x-protobuf"}
    with httpx.Client() as client:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            client.post(peer.push_url, content=snappy(body), headers=headers).raise_for_status()
        used = time.process_time() - cpu
        wait_for(peer, lines)
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


async def sink_alone(peer: VictoriaLogsPeer, lines: int, state: Path) -> tuple[float, float]:
    """The plugin's Loki sink without Docker: its real pipeline (queue, batching, render,
    snappy, HTTP) fed the same records as batches of 5,000 decoded lines, until VictoriaLogs
    holds them all. What the shipper costs, without dockerd's share of two cores."""
    sink = LokiSink()
    now = time.time_ns()
    batches = [
        LogBatch.from_tuples(
            [("stdout", now + i, str(i).encode(), None) for i in range(start, min(start + 5000, lines + 1))]
        )
        for start in range(1, lines + 1, 5000)
    ]
    pipeline = open_pipeline(sink, {"loki-url": peer.push_url, "overflow": "block"}, state_dir=state)
    started, cpu = time.perf_counter(), time.process_time()
    async with running(pipeline):
        for batch in batches:
            await pipeline.put(batch)
    used = time.process_time() - cpu
    await trio.to_thread.run_sync(wait_for, peer, lines)
    await close_clients(sink)
    return time.perf_counter() - started, used


def wait_for(peer: VictoriaLogsPeer, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (held := peer.count()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"VictoriaLogs holds {held} of {count}")
        time.sleep(0.2)


def victoria(state: str, name: str) -> VictoriaLogsPeer:
    return VictoriaLogsPeer(Path(state) / name).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="logdriver-loki-bench-", dir="/var/tmp")
    metrics = f"127.0.0.1:{free_port()}"
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_METRICS_ADDRESS=metrics, LOGDRIVER_GC_INTERVAL="5s")
    bodies = reference_bodies(args.lines)
    rows: dict[str, list[tuple[float, float]]] = {"logdriver": [], "sink alone": [], "reference": [], "discard": []}
    try:
        for run in range(args.runs):
            peer = victoria(state, f"victorialogs-{run}-plugin")
            try:
                opts = [f"--log-opt=loki-url={peer.push_url}", "--log-opt=overflow=block"]
                container = docker("create", f"--log-driver={PLUGIN}", *opts, IMAGE, "seq", "1", str(args.lines))
                before, started = cpu_seconds(plugin.pid), time.perf_counter()
                docker("start", container)
                wait_for(peer, args.lines)
                rows["logdriver"].append((time.perf_counter() - started, cpu_seconds(plugin.pid) - before))
                docker("rm", "-f", container)
            finally:
                peer.stop()
            peer = victoria(state, f"victorialogs-{run}-reference")
            try:
                rows["reference"].append(reference(peer, bodies, args.lines))
            finally:
                peer.stop()
            peer = victoria(state, f"victorialogs-{run}-sink")
            try:
                rows["sink alone"].append(trio.run(sink_alone, peer, args.lines, Path(state) / f"sink-{run}"))
            finally:
                peer.stop()
            rows["discard"].append(discarded(plugin, args.lines))
        print(f"\n## seq 1 {args.lines} into one VictoriaLogs, Loki push (median of {args.runs})")
        print(f"{'':<12}{'lines/s':>12}{'CPU us / line':>15}")
        cpu, rate = {}, {}
        for name, values in rows.items():
            rate[name] = args.lines / statistics.median(v[0] for v in values)
            cpu[name] = statistics.median(v[1] for v in values) * 1_000_000 / args.lines
            print(f"{name:<12}{rate[name]:>12,.0f}{cpu[name]:>15.2f}")
        print(f"plugin lines/s x{rate['logdriver'] / rate['reference']:.2f} the reference's (target >= 0.8)")
        print(f"the sink alone x{rate['sink alone'] / rate['reference']:.2f} the reference's")
        print(f"plugin CPU {cpu['logdriver']:.2f} us a line (target <= 2.5)")
        print(f"the loki sink's share (logdriver - discard): {cpu['logdriver'] - cpu['discard']:.2f} us a line")
        many(plugin, metrics, state)
        churn(plugin, metrics, state)
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        subprocess.run(["rm", "-rf", state], check=False)


def many(plugin: subprocess.Popen[bytes], metrics: str, state: str, containers: int = 50) -> None:
    """50 containers at ~100 lines/s each into one VictoriaLogs, for 20 s."""
    peer = victoria(state, "victorialogs-many")
    try:
        opts = [f"--log-opt=loki-url={peer.push_url}"]
        script = "while true; do for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; sleep 0.1; done"
        names = [
            docker("run", "-d", "--network", "none", f"--log-driver={PLUGIN}", *opts, IMAGE, "sh", "-c", script)
            for _ in range(containers)
        ]
        try:
            time.sleep(20)
            port = str(peer.port)
            connections = sum(
                1
                for line in subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout.splitlines()
                if f":{port} " in line and f"pid={plugin.pid}," in line
            )
            text = urllib.request.urlopen(f"http://{metrics}/metrics").read().decode()
            values = {
                line.split()[0]: float(line.split()[1])
                for line in text.splitlines()
                if line.startswith("logdriver_sink_request") and 'sink="loki"' in line
            }
            requests = values.get('logdriver_sink_requests_total{sink="loki"}', 0)
            lines = values.get('logdriver_sink_request_lines_total{sink="loki"}', 0)
            print(f"\n## {containers} containers x ~100 lines/s into one VictoriaLogs, 20 s")
            print(
                f"connections from the plugin: {connections}; lines per push: {lines / max(requests, 1):,.0f}"
                " (target >= 1,000)"
            )
        finally:
            docker("rm", "-f", *names)
    finally:
        peer.stop()


def churn(plugin: subprocess.Popen[bytes], metrics: str, state: str, containers: int = 1000) -> None:
    """``containers`` short-lived containers of one line each, through the Engine API."""
    peer = victoria(state, "victorialogs-churn")
    try:
        engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
        opts = {"loki-url": peer.push_url}
        start_short_lived(engine, PLUGIN, opts, 20, image=IMAGE)  # warm
        wait_for(peer, 20)
        fds, rss = fds_and_rss(plugin.pid)
        started = time.perf_counter()
        start_short_lived(engine, PLUGIN, opts, containers, image=IMAGE)
        wait_for(peer, 20 + containers)
        took = time.perf_counter() - started
        deadline = time.monotonic() + 60
        held = ("logdriver_sink_clients", "logdriver_pipelines_draining")
        while [metric_sum(metrics, name) for name in held] != [0, 0] and time.monotonic() < deadline:
            time.sleep(0.2)
        after_fds, after_rss = fds_and_rss(plugin.pid)
        left = [int(metric_sum(metrics, name)) for name in held]
        print(f"\n## {containers} short-lived containers, one line each ({took:.0f} s)")
        print(
            f"descriptors {fds} -> {after_fds}; RSS {rss >> 20} -> {after_rss >> 20} MiB"
            f" ({(after_rss - rss) / containers / 1024:+.1f} KiB a container); clients and draining pipelines"
            f" left: {left[0]}, {left[1]}"
        )
    finally:
        peer.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()

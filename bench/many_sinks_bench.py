"""Many containers into one network destination: lines per request, connections, plugin CPU.

The same 100,000 lines reach the real OpenSearch node, the real FluentServer and the
real Kafka 4.4 broker of the tests two ways, in the same run: from 50 containers (2,000 lines each at about
100 lines/s, bursts of 10 every 100 ms, for 20 s) and from one container writing
them as fast as it can. Reported per destination and case: requests sent and lines
per request (the plugin's ``logdriver_sink_requests`` / ``_request_lines``
metrics), the most connections the plugin held open to the destination at once
(sampled with ``ss``), and plugin CPU seconds per 1M lines: in all (with 50
StartLogging/StopLogging and their streams) and while shipping only (from when the
last container runs until the last line arrives).

Targets (issue "many containers"): >= 1,000 lines per request at 50 containers, one
connection per destination, plugin CPU per 1M lines within 2x of the one-container run.

Usage: python bench/many_sinks_bench.py [--containers 50] [--lines-each 2000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import confluent_kafka

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, start_plugin  # bench/bench.py
from tests.es_peer import SearchNode
from tests.fluent_peer import FluentPeer
from tests.kafka_peer import KafkaCluster
from tests.ports import free_port

PLUGIN = "logdriver-many-sinks"
LINE = "x" * 89
BURST = "; ".join([f"echo {LINE}"] * 10)


def metric(metrics: str, name: str, sink: str) -> float:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f'{name}_total{{sink="{sink}"}}'):
                return float(line.split()[1])
    return 0.0


def events(metrics: str, sink: str, event: str) -> float:
    """A sink's event counter (``logdriver_sink_events``)."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("logdriver_sink_events") and f'sink="{sink}"' in line and f'event="{event}"' in line:
                return float(line.split()[1])
    return float("nan")


def connections(pid: int, port: int) -> int:
    out = subprocess.run(["ss", "-Htnp", "state", "established"], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if re.search(rf":{port}\s", line) and f"pid={pid}," in line)


class PeakConnections(threading.Thread):
    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port, self.peak, self.stop = pid, port, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, connections(self.pid, self.port))


def run_case(
    sink: str,
    opts: dict[str, str],
    port: int,
    containers: int,
    lines_each: int,
    delivered: Callable[[], int],
    plugin_pid: int,
    metrics: str,
) -> dict[str, float]:
    total = containers * lines_each
    if containers == 1:
        command = ["sh", "-c", f"seq 1 {total} | sed 's/^/{LINE[:80]}/'"]
    else:
        command = ["sh", "-c", f"i=0; while [ $i -lt {lines_each // 10} ]; do {BURST}; sleep 0.1; i=$((i+1)); done"]
    log_opts = [f"--log-opt={k}={v}" for k, v in {"sinks": sink, **opts}.items()]
    before_requests = metric(metrics, "logdriver_sink_requests", sink)
    before_lines = metric(metrics, "logdriver_sink_request_lines", sink)
    before_cpu = cpu_seconds(plugin_pid)
    before_count = delivered()
    watcher = PeakConnections(plugin_pid, port)
    watcher.start()
    ids = [
        docker("run", "-d", "--network", "none", f"--log-driver={PLUGIN}", *log_opts, IMAGE, *command)
        for _ in range(containers)
    ]
    # Shipping alone, without the containers' start: from when the last one runs until the last line arrives.
    steady_cpu, steady_lines = cpu_seconds(plugin_pid), delivered() - before_count
    try:
        deadline = time.monotonic() + 300
        while (count := delivered() - before_count) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sink}: {count} of {total} lines arrived")
            time.sleep(0.25)
        steady_cpu = cpu_seconds(plugin_pid) - steady_cpu
        steady_lines = total - steady_lines
    finally:
        watcher.stop.set()
        docker("rm", "-f", *ids)
    requests = metric(metrics, "logdriver_sink_requests", sink) - before_requests
    lines = metric(metrics, "logdriver_sink_request_lines", sink) - before_lines
    return {
        "requests": requests,
        "per_request": lines / requests if requests else 0.0,
        "connections": watcher.peak,
        "cpu_per_million": (cpu_seconds(plugin_pid) - before_cpu) * 1e6 / total,
        "steady_per_million": steady_cpu * 1e6 / steady_lines if steady_lines else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--lines-each", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-many-sinks-", dir="/var/tmp"))
    node = SearchNode(workdir / "node", heap="1g").start()
    fluent = FluentPeer(workdir, "fluent", PEER_COUNT_ONLY="1").start()
    kafka = KafkaCluster(workdir / "kafka").start()
    kafka.create_topic("many")
    offsets = confluent_kafka.Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "bench"})

    def kafka_count() -> int:
        return int(offsets.get_watermark_offsets(confluent_kafka.TopicPartition("many", 0), timeout=10)[1])

    metrics = f"127.0.0.1:{free_port()}"
    plugin = start_plugin(PLUGIN, str(workdir / "state"), LOGDRIVER_METRICS_ADDRESS=metrics)
    es_port = int(node.url.rsplit(":", 1)[1])
    fluent_port = int(fluent.address.rsplit(":", 1)[1])
    destinations = {
        "elasticsearch": ({"es-url": node.url, "es-index": "many"}, es_port, lambda: node.count("many", refresh=True)),
        "fluentd": ({"fluentd-address": fluent.address}, fluent_port, fluent.count),
        "kafka": ({"kafka-brokers": kafka.bootstrap, "kafka-topic": "many"}, kafka.nodes[0].port, kafka_count),
    }
    rows = []
    try:
        docker("run", "--rm", f"--log-driver={PLUGIN}", "--log-opt=sinks=file", IMAGE, "true")  # activates it
        for sink, (opts, port, delivered) in destinations.items():
            for containers in (args.containers, 1):
                result = run_case(
                    sink,
                    opts,
                    port,
                    containers,
                    args.lines_each * args.containers // containers,
                    delivered,
                    plugin.pid,
                    metrics,
                )
                rows.append((sink, containers, result))
        producers = events(metrics, "kafka", "producers_opened")
    finally:
        offsets.close()
        plugin.terminate()
        plugin.wait(timeout=30)
        kafka.stop()
        fluent.stop()
        node.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    total = args.containers * args.lines_each
    print(f"\n## {total:,} lines into one destination: {args.containers} containers at ~100 lines/s vs one container")
    print(
        f"{'destination':<16}{'containers':>11}{'requests':>10}{'lines/request':>15}{'connections':>13}"
        f"{'CPU s/1M':>10}{'shipping only':>15}"
    )
    for sink, containers, r in rows:
        print(
            f"{sink:<16}{containers:>11}{r['requests']:>10,.0f}{r['per_request']:>15,.0f}"
            f"{r['connections']:>13}{r['cpu_per_million']:>10.1f}{r['steady_per_million']:>15.1f}"
        )
    print(f"kafka producers opened for both cases: {producers:.0f}")
    for sink in destinations:
        many, one = (r for s, _, r in rows if s == sink)
        print(
            f"{sink}: plugin CPU per line, {args.containers} containers / one container: "
            f"{many['cpu_per_million'] / one['cpu_per_million']:.2f}x with the containers' starts, "
            f"{many['steady_per_million'] / one['steady_per_million']:.2f}x shipping only"
        )


if __name__ == "__main__":
    main()

"""Bursts into healthy destinations, default options: every line delivered, the writer not held.

For each sink against its real peer (file, Fluentd's forward server, OpenSearch, Kafka, an
OpenTelemetry Collector), two workloads: one container writing ``seq 1 N``, and 10 such
containers started at once. Each runs twice in the same run, on a fresh plugin each time:
with the default buffer (``hybrid``: memory, spilling onto disk when full) and with
``buffer=memory``, the default before it (a 100,000-line queue that drops the newest when
full). Printed per row: lines delivered of written, the writers' time (first start until
the last container exited), the time until every delivered line was at the peer, and the
plugin's peak RSS against its memory budget (256 MiB by default).

Usage: python bench/burst_bench.py [--lines 1000000] [--sinks otlp,fluentd,...] [--containers 1,10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import (
    IMAGE,
    cpu_seconds,
    docker,
    dockerd_pid,
    peak_rss_mib,
    start_plugin,
)  # bench/bench.py, beside this file

PLUGIN = "logdriver-burst-bench"
SETTLE = 20.0  # seconds without a new delivered line before a run is called done


@dataclass
class Peer:
    opts: Callable[[str], dict[str, str]]  # run name -> log-opts naming where its lines go
    count: Callable[[str], int]  # run name -> lines delivered so far


class FileCounter:
    """Lines in every file under a directory, read incrementally (the file sink's output)."""

    def __init__(self) -> None:
        self.offsets: dict[Path, tuple[int, int]] = {}

    def __call__(self, directory: Path) -> int:
        total = 0
        for path in directory.rglob("*") if directory.exists() else ():
            if not path.is_file():
                continue
            offset, lines = self.offsets.get(path, (0, 0))
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
            cut = data.rfind(b"\n") + 1
            lines += data.count(b"\n", 0, cut)
            self.offsets[path] = (offset + cut, lines)
            total += lines
        return total


def since_start(count: Callable[[], int], opts: dict[str, str]) -> Peer:
    """A peer every run shares: a run counts what arrived after it asked for its options."""
    base = 0

    def named(run: str) -> dict[str, str]:
        nonlocal base
        base = count()
        return opts

    return Peer(named, lambda run: count() - base)


@contextlib.contextmanager
def peer(sink: str, workdir: Path) -> Iterator[Peer]:
    workdir.mkdir(parents=True, exist_ok=True)
    if sink == "file":  # its directory is plugin-wide: files/ in each run's own state directory
        counter = FileCounter()
        yield Peer(lambda run: {"sinks": "file"}, lambda run: counter(workdir.parent / f"state-{run}" / "files"))
    elif sink == "fluentd":
        from tests.fluent_peer import FluentPeer

        with FluentPeer(workdir, PEER_COUNT_ONLY="1") as fluent:
            yield since_start(fluent.count, {"sinks": "fluentd", "fluentd-address": fluent.address})
    elif sink == "otlp":
        from tests.otel_peer import CollectorPeer

        with CollectorPeer(workdir / "collector") as collector:
            yield since_start(collector.count, {"sinks": "otlp", "otlp-endpoint": collector.endpoint})
    elif sink == "elasticsearch":
        from tests.es_peer import SearchNode

        node = SearchNode(workdir / "node", heap="2g").start()
        try:
            yield Peer(
                lambda run: {"sinks": "elasticsearch", "es-url": node.url, "es-index": run},
                lambda run: node.count(run, refresh=False),
            )
        finally:
            node.stop()
    elif sink == "kafka":
        import confluent_kafka

        from tests.kafka_peer import KafkaCluster

        cluster = KafkaCluster(workdir / "kafka", heap="1g").start()
        consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "bench"})

        def opts(run: str) -> dict[str, str]:
            cluster.create_topic(run)
            return {"sinks": "kafka", "kafka-brokers": cluster.bootstrap, "kafka-topic": run}

        def count(run: str) -> int:
            partition = confluent_kafka.TopicPartition(run, 0)
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])

        try:
            yield Peer(opts, count)
        finally:
            consumer.close()
            cluster.stop()
    else:
        raise SystemExit(f"unknown sink {sink}")


@dataclass
class Row:
    delivered: int
    written: int
    writer_seconds: float
    delivered_seconds: float
    peak_rss_mib: float
    plugin_cpu: float  # seconds, start to every line delivered
    dockerd_cpu: float


def median_row(rows: list[Row]) -> Row:
    """Each column's median; delivered is the worst run's (a loss must show)."""
    return Row(
        min(r.delivered for r in rows),
        rows[0].written,
        statistics.median(r.writer_seconds for r in rows),
        statistics.median(r.delivered_seconds for r in rows),
        max(r.peak_rss_mib for r in rows),
        statistics.median(r.plugin_cpu for r in rows),
        statistics.median(r.dockerd_cpu for r in rows),
    )


def run(target: Peer, name: str, containers: int, lines: int, opts: dict[str, str], state: str) -> Row:
    plugin = start_plugin(
        PLUGIN,
        state,
        **({"LOGDRIVER_METRICS_ADDRESS": os.environ["BURST_METRICS"]} if os.environ.get("BURST_METRICS") else {}),
    )
    created = []
    try:
        log_opts = [f"--log-opt={k}={v}" for k, v in {**target.opts(name), **opts}.items()]
        created = [
            docker("create", f"--log-driver={PLUGIN}", *log_opts, IMAGE, "seq", "1", str(lines))
            for _ in range(containers)
        ]
        dockerd = dockerd_pid()
        plugin_before, dockerd_before = cpu_seconds(plugin.pid), cpu_seconds(dockerd)
        started = time.perf_counter()
        for container in created:
            docker("start", container)
        for container in created:
            docker("wait", container)
        writer = time.perf_counter() - started
        last, last_change, delivered_at = -1, time.perf_counter(), time.perf_counter()
        while (count := target.count(name)) < containers * lines and time.perf_counter() - last_change < SETTLE:
            if count != last:
                last, last_change, delivered_at = count, time.perf_counter(), time.perf_counter()
            time.sleep(0.2)
        if count != last:
            delivered_at = time.perf_counter()
        return Row(
            count,
            containers * lines,
            writer,
            delivered_at - started,
            peak_rss_mib(plugin.pid),
            cpu_seconds(plugin.pid) - plugin_before,
            cpu_seconds(dockerd) - dockerd_before,
        )
    finally:
        if created:
            docker("rm", "-f", *created)
        plugin.terminate()
        plugin.wait(timeout=60)
        subprocess.run(["rm", "-rf", state], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--sinks", default="file,fluentd,elasticsearch,kafka,otlp")
    parser.add_argument("--containers", default="1,10")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant, alternating (medians)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-burst-bench-", dir="/var/tmp"))
    variants = {"default (hybrid)": {}, "buffer=memory (before)": {"buffer": "memory"}}
    print(f"\n## Bursts of seq 1 {args.lines:,} per container into healthy real peers, default options")
    print(
        f"{'sink':<14}{'containers':>11}  {'buffer':<24}{'delivered/written':>22}{'writers s':>11}"
        f"{'all delivered s':>17}{'peak RSS MiB':>14}{'plugin CPU s':>14}{'dockerd CPU s':>15}"
    )
    try:
        for sink in args.sinks.split(","):
            with peer(sink, workdir / sink) as target:
                for containers in (int(n) for n in args.containers.split(",")):
                    rows: dict[str, list[Row]] = {label: [] for label in variants}
                    for attempt in range(args.runs):
                        order = list(variants) if attempt % 2 == 0 else list(reversed(variants))
                        for label in order:
                            name = f"{sink}-{containers}-{attempt}-{list(variants).index(label)}-{int(time.time())}"
                            state = str(workdir / f"state-{name}")
                            rows[label].append(run(target, name, containers, args.lines, variants[label], state))
                    for label, values in rows.items():
                        row = median_row(values)
                        print(
                            f"{sink:<14}{containers:>11}  {label:<24}"
                            f"{f'{row.delivered:,}/{row.written:,}':>22}{row.writer_seconds:>11.2f}"
                            f"{row.delivered_seconds:>17.2f}{row.peak_rss_mib:>14.0f}"
                            f"{row.plugin_cpu:>14.2f}{row.dockerd_cpu:>15.2f}",
                            flush=True,
                        )
                    before = median_row(rows["buffer=memory (before)"]).writer_seconds
                    now = median_row(rows["default (hybrid)"]).writer_seconds
                    print(f"{'':<27}writers' speed, default / before: x{before / now:.2f}", flush=True)
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()

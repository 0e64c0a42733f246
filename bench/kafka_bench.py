"""Kafka: logdriver against a plain confluent-kafka producer, same broker, same settings, same run.

One real Kafka 4.4 broker (tests/kafka_peer.py). Interleaved runs, each into a fresh topic:

- ``seq 1 N`` in a container logging through logdriver's kafka sink (``overflow=block``,
  lossless; and the default policy, with its drops reported), timed from ``docker start``
  until the topic's end offset reaches N (every line acknowledged by the broker);
- the reference: one Python process with librdkafka through confluent-kafka and the very
  settings logdriver's producer has with the default options (``producer_config``:
  idempotence, acks=all, lz4, linger, in-flight; and delivery reports for failures
  only), producing the same N messages (the same JSON records and key, and no headers,
  as logdriver's default), made before the clock starts, with one delivery callback,
  timed from the first ``produce`` until ``flush`` returns.

Printed: lines/s, the ratio to the reference, and CPU seconds per 1M lines of the
producer (the plugin process with librdkafka's threads; the reference process likewise),
of dockerd (carrying the container's output to the plugin) and of the broker, all on
the same 2 cores.
Targets (issue "Kafka sink"): >= 0.9x the reference's rate, plugin CPU <= 2 s per 1M lines.

Usage: python bench/kafka_bench.py [--runs 5] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import (  # bench/bench.py, beside this file
    IMAGE,
    cpu_seconds,
    docker,
    dockerd_pid,
    peak_rss_mib,
    start_plugin,
)

PLUGIN = "logdriver-kafka-bench"


def reference(bootstrap: str, topic: str, lines: int) -> None:
    """The reference producer (run in its own process): prints seconds and CPU seconds."""
    import confluent_kafka

    from logdriver.testing import context_for
    from logdriver_sinks.kafka import KafkaConfig, KafkaSink, producer_config
    from logdriver_sinks.kafka._producer import REPORT_FAILURES_ONLY

    context = context_for(KafkaSink(), {"kafka-brokers": bootstrap}, environ={})
    # The very librdkafka settings of logdriver's producer, reports for failures only included.
    config = {**producer_config(context.config(KafkaConfig)), **REPORT_FAILURES_ONLY}
    container = "c" * 64
    key = container.encode()
    constant = f'"container_id":"{container}","container_name":"bench","image":"logdriver-test"}}'
    now = time.time_ns()
    values = [
        f'{{"time":"2026-12-02T07:26:54.{i % 10**9:09d}Z","stream":"stdout","message":"{i}",{constant}'.encode()
        for i in range(1, lines + 1)
    ]
    headers = None  # logdriver's default for JSON records (they carry the same fields)
    failed = 0

    def report(error: object, _message: object) -> None:
        nonlocal failed
        failed += error is not None

    producer = confluent_kafka.Producer(config)
    timestamp = now // 1_000_000
    cpu0, started = time.process_time(), time.perf_counter()
    produce, poll = producer.produce, producer.poll
    for value in values:
        while True:
            try:
                produce(topic, value, key, on_delivery=report, timestamp=timestamp, headers=headers)
                break
            except BufferError:
                poll(0.005)
        poll(0)
    producer.flush(120)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    print(json.dumps({"seconds": elapsed, "cpu": cpu, "failed": failed}))


class EndOffsets:
    """The end offset of partition 0 of a topic, asked of the broker by one kept consumer
    (a new client per question would cost the machine more than the answer)."""

    def __init__(self, bootstrap: str) -> None:
        import confluent_kafka

        self.consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench"})

    def __call__(self, topic: str) -> int:
        import confluent_kafka

        return int(self.consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, 0), timeout=10)[1])

    def close(self) -> None:
        self.consumer.close()


def run_plugin(bootstrap: str, ends: EndOffsets, topic: str, lines: int, opts: dict[str, str]) -> float:
    """Seconds from docker start until the broker holds every line (nan if some were dropped)."""
    log_opts = [f"--log-opt={k}={v}" for k, v in {"sinks": "kafka", "kafka-brokers": bootstrap, **opts}.items()]
    log_opts.append(f"--log-opt=kafka-topic={topic}")
    container = docker("create", f"--log-driver={PLUGIN}", *log_opts, IMAGE, "seq", "1", str(lines))
    try:
        started = time.perf_counter()
        docker("start", container)
        last, last_change = -1, time.perf_counter()
        while (count := ends(topic)) < lines:
            if count != last:
                last, last_change = count, time.perf_counter()
            elif time.perf_counter() - last_change > 10:
                return float("nan")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        docker("wait", container)
        docker("rm", "-f", container)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--reference", nargs=2, metavar=("BOOTSTRAP", "TOPIC"))
    parser.add_argument("--opt", action="append", default=[], help="an extra log-opt k=v for logdriver's runs")
    args = parser.parse_args()
    if args.reference:
        reference(args.reference[0], args.reference[1], args.lines)
        return
    from tests.kafka_peer import KafkaCluster

    lines = args.lines
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-kafka-bench-", dir="/var/tmp"))
    cluster = KafkaCluster(workdir / "kafka", heap="1g").start()
    plugin = start_plugin(PLUGIN, str(workdir / "state"))
    results: dict[str, list[float]] = {"reference": [], "block": [], "default": []}
    cpu: dict[str, list[float]] = {key: [] for key in results}
    # The rest of the machine's work per run: dockerd (the container's output, logdriver's
    # runs only) and the broker, which share the 2 cores with the producer under test.
    dockerd_cpu: dict[str, list[float]] = {key: [] for key in results}
    broker_cpu: dict[str, list[float]] = {key: [] for key in results}
    incomplete = 0
    ends: EndOffsets | None = None
    try:
        cluster.create_topic("warm-up")
        ends = EndOffsets(cluster.bootstrap)
        dockerd = dockerd_pid()
        assert cluster.nodes[0].process is not None
        broker_pid = cluster.nodes[0].process.pid
        run_plugin(cluster.bootstrap, ends, "warm-up", 1000, {})  # activates the plugin, opens the producer
        for run in range(args.runs):
            topic = f"ref-{run}"
            cluster.create_topic(topic)
            broker = cpu_seconds(broker_pid)
            out = subprocess.run(
                [sys.executable, __file__, "--lines", str(lines), "--reference", cluster.bootstrap, topic],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
            broker_cpu["reference"].append(cpu_seconds(broker_pid) - broker)
            dockerd_cpu["reference"].append(0.0)
            measured = json.loads(out.stdout.strip().splitlines()[-1])
            results["reference"].append(measured["seconds"])
            cpu["reference"].append(measured["cpu"])
            extra = dict(opt.split("=", 1) for opt in args.opt)
            for policy, opts in (("block", {**extra, "overflow": "block"}), ("default", extra)):
                topic = f"{policy}-{run}"
                cluster.create_topic(topic)
                before = cpu_seconds(plugin.pid), cpu_seconds(dockerd), cpu_seconds(broker_pid)
                seconds = run_plugin(cluster.bootstrap, ends, topic, lines, opts)
                cpu[policy].append(cpu_seconds(plugin.pid) - before[0])
                dockerd_cpu[policy].append(cpu_seconds(dockerd) - before[1])
                broker_cpu[policy].append(cpu_seconds(broker_pid) - before[2])
                if seconds != seconds:
                    incomplete += 1
                else:
                    results[policy].append(seconds)
        print(f"\n## Kafka: seq 1 {lines} to one Kafka 4.4 broker (median of {args.runs}; until the broker has all)")
        print(f"{'producer':<40}{'lines/s':>12}{'x reference':>13}{'CPU s/1M':>10}{'dockerd':>9}{'broker':>8}")
        base = statistics.median(results["reference"])
        labels = {
            "reference": "confluent-kafka, same settings",
            "block": "logdriver kafka (overflow=block)",
            "default": "logdriver kafka (default policy)",
        }
        for key, label in labels.items():
            if not results[key]:
                print(f"{label:<40}{'-':>12}{'-':>13}")
                continue
            seconds = statistics.median(results[key])
            per_million = statistics.median(cpu[key]) * 1e6 / lines
            others = statistics.median(dockerd_cpu[key]) * 1e6 / lines, statistics.median(broker_cpu[key]) * 1e6 / lines
            print(
                f"{label:<40}{lines / seconds:>12,.0f}{base / seconds:>13.2f}{per_million:>10.2f}"
                f"{others[0]:>9.2f}{others[1]:>8.2f}"
            )
        print(f"runs where the default policy dropped lines: {incomplete}")
        print(f"plugin peak RSS: {peak_rss_mib(plugin.pid):.0f} MiB")
    finally:
        if ends is not None:
            ends.close()
        plugin.terminate()
        plugin.wait(timeout=30)
        cluster.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()

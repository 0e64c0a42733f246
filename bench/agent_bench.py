"""logdriver against what users run instead: json-file tailed by an agent, same run, same receiver.

The agent is an OpenTelemetry Collector built with its builder from the Go module proxy
(``scripts/build-otelcol-agent.sh``: filelog receiver with its ``container`` parser, batch
processor, OTLP/HTTP exporter; default settings otherwise), reading the json-file logs of
exactly the containers of the run. logdriver runs with ``sinks=otlp`` and default options.
Both ship to one destination, fresh per run: an OTLP receiver (a Collector with a file exporter,
``tests/otel_peer.py``), then a Kafka 4.4 broker (the second sink compared: the module proxy
refuses the Collector's Elasticsearch exporter).

- one container writing ``seq 1 N`` (median of --runs): lines delivered, CPU seconds of dockerd
  plus the shipper (the agent, or the plugin) per 1M lines, and the seconds from ``docker start``
  until the receiver holds every line;
- 50 containers at ~100 lines/s each: CPU seconds per 1M lines over a --seconds window after a
  warm-up (as bench/many_bench.py: container starts and stops are nobody's shipping cost),
  then every line written must arrive.

Targets (issue "bursts lose nothing"): every line delivered on both sides; logdriver's CPU per
line <= 0.5x and its time to every line <= 0.6x the agent's on the burst; <= 0.75x CPU with 50
containers.

Usage: python bench/agent_bench.py [--runs 3] [--lines 1000000] [--seconds 30]
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from many_bench import fifo_entries, json_file_lines  # bench/many_bench.py

from bench import IMAGE, cpu_seconds, docker, dockerd_pid, engine_root, start_plugin  # bench/bench.py
from tests.otel_peer import CollectorPeer
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "logdriver-agent-bench"
SCRIPT = "while true; do for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; sleep 0.1; done"


def agent_binary() -> str:
    out = subprocess.run([str(ROOT / "scripts/build-otelcol-agent.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


class Agent:
    """The Collector tailing the json-file logs of ``containers`` into ``exporter``."""

    def __init__(self, workdir: Path, containers: list[str], exporter: str) -> None:
        root = engine_root()
        include = "\n".join(f"      - {root}/containers/{c}/{c}-json.log" for c in containers)
        config = workdir / "agent.yaml"
        config.write_text(
            f"""receivers:
  filelog:
    include:
{include}
    start_at: beginning
    operators:
      - type: container
        format: docker
        add_metadata_from_filepath: false
processors:
  batch: {{}}
exporters:
{exporter}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [{exporter.split(":")[0].strip()}]
"""
        )
        self.log = open(workdir / "agent.log", "ab")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen([agent_binary(), "--config", str(config)], stdout=self.log, stderr=self.log)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@dataclass
class Result:
    delivered: int
    written: int
    seconds: float  # docker start until the receiver held every line
    cpu: float  # dockerd + shipper, CPU seconds
    cpu_lines: int  # the lines written while ``cpu`` was measured
    dockerd_cpu: float = 0.0  # dockerd's part of ``cpu``: what the route asks of the daemon

    @property
    def cpu_per_million(self) -> float:
        return self.cpu * 1e6 / max(self.cpu_lines, 1)

    @property
    def dockerd_per_million(self) -> float:
        return self.dockerd_cpu * 1e6 / max(self.cpu_lines, 1)


@dataclass
class Target:
    """One run's destination: logdriver's log-opts, the agent's exporter, and a count of what arrived."""

    log_opts: list[str]
    exporter: str  # the agent's ``exporters:`` entry, indented
    count: Callable[[], int]


Destination = Callable[[Path, str], AbstractContextManager[Target]]


@contextlib.contextmanager
def otlp(workdir: Path, run: str) -> Iterator[Target]:
    """A fresh OTLP receiver (a Collector with a file exporter) per run."""
    with CollectorPeer(workdir / "receiver") as receiver:
        opts = ["--log-opt=sinks=otlp", f"--log-opt=otlp-endpoint={receiver.endpoint}"]
        yield Target(opts, f"  otlphttp:\n    endpoint: {receiver.endpoint}", receiver.count)


def kafka(cluster: Any) -> Destination:
    """A fresh topic per run on one Kafka broker; the agent's exporter sends each log body as a
    message (``encoding: raw``), logdriver each line as a JSON message."""
    import confluent_kafka

    consumer = confluent_kafka.Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "bench"})

    @contextlib.contextmanager
    def target(workdir: Path, run: str) -> Iterator[Target]:
        topic = "agent-bench-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in run)
        cluster.create_topic(topic)
        opts = [
            "--log-opt=sinks=kafka",
            f"--log-opt=kafka-brokers={cluster.bootstrap}",
            f"--log-opt=kafka-topic={topic}",
        ]
        exporter = f"  kafka:\n    brokers: [{cluster.bootstrap}]\n    logs:\n      topic: {topic}\n      encoding: raw"
        partition = confluent_kafka.TopicPartition(topic, 0)
        yield Target(opts, exporter, lambda: int(consumer.get_watermark_offsets(partition, timeout=10)[1]))

    return target


def wait_for(count: Callable[[], int], target: int, settle: float = 30.0) -> tuple[int, float]:
    """(lines held, when the last arrived): until ``target`` or ``settle`` s without a new one."""
    last, changed = -1, time.perf_counter()
    while (held := count()) < target and time.perf_counter() - changed < settle:
        if held != last:
            last, changed = held, time.perf_counter()
        time.sleep(0.1)
    return held, (time.perf_counter() if held != last else changed)


def start_route(
    route: str, target: Target, workdir: Path, create: Callable[[list[str]], str], count: int, plugin_pid: int
) -> tuple[list[str], int, Agent | None]:
    """Create ``count`` containers for ``route``; returns them, the shipper's pid and the agent."""
    if route == "logdriver":
        return [create([f"--log-driver={PLUGIN}", *target.log_opts]) for _ in range(count)], plugin_pid, None
    names = [create(["--log-driver=json-file"]) for _ in range(count)]
    agent = Agent(workdir, names, target.exporter)
    time.sleep(1)  # the agent is up before the first line
    return names, agent.process.pid, agent


def burst(route: str, destination: Destination, workdir: Path, lines: int, plugin_pid: int) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    with destination(workdir, workdir.name) as target:
        names, shipper, agent = start_route(
            route, target, workdir, lambda args: docker("create", *args, IMAGE, "seq", "1", str(lines)), 1, plugin_pid
        )
        dockerd = dockerd_pid()
        dockerd_before, shipper_before = cpu_seconds(dockerd), cpu_seconds(shipper)
        started = time.perf_counter()
        try:
            docker("start", names[0])
            held, at = wait_for(target.count, lines)
            dockerd_cpu = cpu_seconds(dockerd) - dockerd_before
            cpu = dockerd_cpu + cpu_seconds(shipper) - shipper_before
            return Result(held, lines, at - started, cpu, lines, dockerd_cpu)
        finally:
            if agent is not None:
                agent.stop()
            docker("rm", "-f", *names)


def written_lines(route: str, names: list[str], metrics: str) -> int:
    """Lines the containers wrote so far: json-file's own files, or what logdriver read from FIFOs."""
    if route == "logdriver":
        return fifo_entries(metrics)
    return json_file_lines(names)


def many(
    route: str, destination: Destination, workdir: Path, args: argparse.Namespace, plugin_pid: int, metrics: str
) -> Result:
    """CPU per line over a window after a warm-up (container starts and stops are not the
    shipper's cost); then every line written must arrive."""
    workdir.mkdir(parents=True, exist_ok=True)
    with destination(workdir, workdir.name) as target:
        names, shipper, agent = start_route(
            route,
            target,
            workdir,
            lambda opts: docker("create", *opts, "--network", "none", IMAGE, "sh", "-c", SCRIPT),
            args.containers,
            plugin_pid,
        )
        dockerd = dockerd_pid()
        at_start = written_lines(route, names, metrics)
        try:
            for name in names:
                docker("start", name)
            time.sleep(args.warmup)
            lines_before = written_lines(route, names, metrics)
            dockerd_before, shipper_before = cpu_seconds(dockerd), cpu_seconds(shipper)
            time.sleep(args.seconds)
            dockerd_cpu = cpu_seconds(dockerd) - dockerd_before
            cpu = dockerd_cpu + cpu_seconds(shipper) - shipper_before
            lines = written_lines(route, names, metrics) - lines_before
            docker("stop", "-t", "0", *names)
            time.sleep(1)
            written = written_lines(route, names, metrics) - at_start
            held, _ = wait_for(target.count, written)
            return Result(held, written, 0.0, cpu, lines, dockerd_cpu)
        finally:
            if agent is not None:
                agent.stop()
            docker("rm", "-f", *names)


ROUTES = ("json-file + Collector", "logdriver")


def compare(
    name: str, destination: Destination, workdir: Path, args: argparse.Namespace, plugin_pid: int, metrics: str
) -> None:
    if "burst" in args.workloads.split(","):
        compare_bursts(name, destination, workdir, args, plugin_pid)
    if "many" in args.workloads.split(","):
        compare_many(name, destination, workdir, args, plugin_pid, metrics)


def compare_bursts(
    name: str, destination: Destination, workdir: Path, args: argparse.Namespace, plugin_pid: int
) -> None:
    bursts: dict[str, list[Result]] = {route: [] for route in ROUTES}
    for run in range(args.runs):
        for route in ROUTES if run % 2 == 0 else reversed(ROUTES):
            bursts[route].append(
                burst(route, destination, workdir / f"{name}-b{run}-{route[:4]}", args.lines, plugin_pid)
            )
    print(f"\n## {name}: seq 1 {args.lines:,} in one container (median of {args.runs})")
    print(f"{'route':<24}{'delivered/written':>28}{'CPU s / 1M lines':>18}{'of it dockerd':>15}{'s to every line':>17}")
    medians = {}
    for route, results in bursts.items():
        delivered = sum(r.delivered for r in results)
        cpu = statistics.median(r.cpu_per_million for r in results)
        daemon = statistics.median(r.dockerd_per_million for r in results)
        seconds = statistics.median(r.seconds for r in results)
        medians[route] = (cpu, seconds)
        print(
            f"{route:<24}{f'{delivered:,}/{args.lines * len(results):,}':>28}"
            f"{cpu:>18.2f}{daemon:>15.2f}{seconds:>17.2f}"
        )
    (agent_cpu, agent_s), (ours_cpu, ours_s) = medians[ROUTES[0]], medians[ROUTES[1]]
    print(
        f"logdriver / agent: CPU per line x{ours_cpu / agent_cpu:.2f} (target <= 0.5), "
        f"time to every line x{ours_s / agent_s:.2f} (target <= 0.6)"
    )


def compare_many(
    name: str, destination: Destination, workdir: Path, args: argparse.Namespace, plugin_pid: int, metrics: str
) -> None:
    """Rounds in alternating order, medians: dockerd's own cost per line swings between windows
    by more than the shippers differ, so one window each decides nothing."""
    results: dict[str, list[Result]] = {route: [] for route in ROUTES}
    for run in range(args.runs):
        for route in ROUTES if run % 2 == 0 else reversed(ROUTES):
            where = workdir / f"{name}-m{run}-{route[:4]}"
            results[route].append(many(route, destination, where, args, plugin_pid, metrics))
    print(
        f"\n## {name}: {args.containers} containers x ~100 lines/s, {args.seconds:.0f} s windows"
        f" (median of {args.runs})"
    )
    print(f"{'route':<24}{'delivered/written':>28}{'CPU s / 1M lines':>18}{'of it dockerd':>15}")
    per_line = {}
    for route, rounds in results.items():
        delivered, written = sum(r.delivered for r in rounds), sum(r.written for r in rounds)
        per_line[route] = statistics.median(r.cpu_per_million for r in rounds)
        daemon = statistics.median(r.dockerd_per_million for r in rounds)
        print(f"{route:<24}{f'{delivered:,}/{written:,}':>28}{per_line[route]:>18.2f}{daemon:>15.2f}")
    print(f"logdriver / agent: CPU per line x{per_line[ROUTES[1]] / per_line[ROUTES[0]]:.2f} (target <= 0.75)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="the 50 containers' measured window")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--destinations", default="otlp,kafka")
    parser.add_argument("--workloads", default="burst,many", help="burst, many or both")
    args = parser.parse_args()
    agent_binary()  # built before anything is timed
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-agent-bench-", dir="/var/tmp"))
    metrics = f"127.0.0.1:{free_port()}"
    plugin = start_plugin(PLUGIN, str(workdir / "state"), LOGDRIVER_METRICS_ADDRESS=metrics)
    cluster = None
    try:
        docker("run", "--rm", f"--log-driver={PLUGIN}", IMAGE, "true")  # the daemon activates plugins lazily
        wanted = args.destinations.split(",")
        if "otlp" in wanted:
            compare("OTLP (one Collector receiver)", otlp, workdir, args, plugin.pid, metrics)
        if "kafka" in wanted:
            from tests.kafka_peer import KafkaCluster

            cluster = KafkaCluster(workdir / "kafka", heap="1g").start()
            compare("Kafka 4.4 (one broker)", kafka(cluster), workdir, args, plugin.pid, metrics)
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        if cluster is not None:
            cluster.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()

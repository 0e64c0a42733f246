"""logdriver against what users run instead: json-file tailed by an agent, same run, same receiver.

The agent is an OpenTelemetry Collector built with its builder from the Go module proxy
(``scripts/build-otelcol-agent.sh``: filelog receiver with its ``container`` parser, batch
processor, OTLP/HTTP exporter; default settings otherwise), reading the json-file logs of
exactly the containers of the run. logdriver runs with ``sinks=otlp`` and default options.
Both ship to one receiver: a Collector with an OTLP receiver and a file exporter
(``tests/otel_peer.py``), a fresh one per run.

- one container writing ``seq 1 N`` (median of --runs): lines delivered, CPU seconds of dockerd
  plus the shipper (the agent, or the plugin) per 1M lines, and the seconds from ``docker start``
  until the receiver holds every line;
- 50 containers at ~100 lines/s each for --seconds: the same CPU per 1M lines, once every line
  written has been delivered.

Targets (issue "bursts lose nothing"): every line delivered on both sides; logdriver's CPU per
line <= 0.5x and its time to every line <= 0.6x the agent's on the burst; <= 0.75x CPU with 50
containers.

Usage: python bench/agent_bench.py [--runs 3] [--lines 1000000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, dockerd_pid, engine_root, start_plugin  # bench/bench.py
from tests.otel_peer import CollectorPeer

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "logdriver-agent-bench"
SCRIPT = "while true; do for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done; sleep 0.1; done"


def agent_binary() -> str:
    out = subprocess.run([str(ROOT / "scripts/build-otelcol-agent.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


class Agent:
    """The Collector tailing the json-file logs of ``containers`` into ``endpoint``."""

    def __init__(self, workdir: Path, containers: list[str], endpoint: str) -> None:
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
  otlphttp:
    endpoint: {endpoint}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      processors: [batch]
      exporters: [otlphttp]
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
    cpu: float  # dockerd + shipper


def wait_for(collector: CollectorPeer, count: int, settle: float = 30.0) -> tuple[int, float]:
    """(records held, when the last arrived): until ``count`` or ``settle`` s without a new one."""
    last, changed = -1, time.perf_counter()
    while (held := collector.count()) < count and time.perf_counter() - changed < settle:
        if held != last:
            last, changed = held, time.perf_counter()
        time.sleep(0.1)
    return held, (time.perf_counter() if held != last else changed)


def burst(route: str, workdir: Path, lines: int, plugin_pid: int) -> Result:
    with CollectorPeer(workdir / "receiver") as receiver:
        if route == "logdriver":
            opts = ["--log-opt=sinks=otlp", f"--log-opt=otlp-endpoint={receiver.endpoint}"]
            container = docker("create", f"--log-driver={PLUGIN}", *opts, IMAGE, "seq", "1", str(lines))
            shipper, agent = plugin_pid, None
        else:
            container = docker("create", "--log-driver=json-file", IMAGE, "seq", "1", str(lines))
            agent = Agent(workdir, [container], receiver.endpoint)
            shipper = agent.process.pid
            time.sleep(1)  # the agent is up before the first line
        dockerd = dockerd_pid()
        before = cpu_seconds(dockerd) + cpu_seconds(shipper)
        started = time.perf_counter()
        try:
            docker("start", container)
            held, at = wait_for(receiver, lines)
            return Result(held, lines, at - started, cpu_seconds(dockerd) + cpu_seconds(shipper) - before)
        finally:
            if agent is not None:
                agent.stop()
            docker("rm", "-f", container)


def many(route: str, workdir: Path, containers: int, seconds: float, plugin_pid: int) -> Result:
    with CollectorPeer(workdir / "receiver") as receiver:
        common = ["--network", "none", IMAGE, "sh", "-c", SCRIPT]
        if route == "logdriver":
            opts = ["--log-opt=sinks=otlp", f"--log-opt=otlp-endpoint={receiver.endpoint}"]
            names = [docker("create", f"--log-driver={PLUGIN}", *opts, *common) for _ in range(containers)]
            shipper, agent = plugin_pid, None
        else:
            names = [docker("create", "--log-driver=json-file", *common) for _ in range(containers)]
            agent = Agent(workdir, names, receiver.endpoint)
            shipper = agent.process.pid
            time.sleep(1)
        dockerd = dockerd_pid()
        before = cpu_seconds(dockerd) + cpu_seconds(shipper)
        started = time.perf_counter()
        try:
            for name in names:
                docker("start", name)
            time.sleep(seconds)
            docker("stop", "-t", "0", *names)
            # What each container wrote: json-file's own file, or logdriver's store (docker logs).
            written = sum(len(docker("logs", name).splitlines()) for name in names)
            held, at = wait_for(receiver, written)
            return Result(held, written, at - started, cpu_seconds(dockerd) + cpu_seconds(shipper) - before)
        finally:
            if agent is not None:
                agent.stop()
            docker("rm", "-f", *names)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    agent_binary()  # built before anything is timed
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-agent-bench-", dir="/var/tmp"))
    plugin = start_plugin(PLUGIN, str(workdir / "state"))
    routes = ("json-file + Collector", "logdriver")
    try:
        bursts: dict[str, list[Result]] = {route: [] for route in routes}
        for run in range(args.runs):
            for route in routes if run % 2 == 0 else reversed(routes):
                bursts[route].append(burst(route, workdir / f"b{run}-{route[:4]}", args.lines, plugin.pid))
        print(f"\n## seq 1 {args.lines:,} in one container, into one OTLP receiver (median of {args.runs})")
        print(f"{'route':<24}{'delivered/written':>24}{'CPU s / 1M lines':>18}{'s to every line':>17}")
        medians = {}
        for route, results in bursts.items():
            delivered = min(r.delivered for r in results)
            cpu = statistics.median(r.cpu for r in results) * 1e6 / args.lines
            seconds = statistics.median(r.seconds for r in results)
            medians[route] = (cpu, seconds)
            print(f"{route:<24}{f'{delivered:,}/{args.lines * len(results):,} x1/run':>24}{cpu:>18.2f}{seconds:>17.2f}")
        (agent_cpu, agent_s), (ours_cpu, ours_s) = medians[routes[0]], medians[routes[1]]
        print(
            f"logdriver / agent: CPU per line x{ours_cpu / agent_cpu:.2f} (target <= 0.5), "
            f"time to every line x{ours_s / agent_s:.2f} (target <= 0.6)"
        )

        print(f"\n## {args.containers} containers x ~100 lines/s for {args.seconds:.0f} s, into one OTLP receiver")
        print(f"{'route':<24}{'delivered/written':>24}{'CPU s / 1M lines':>18}")
        per_line = {}
        for route in routes:
            result = many(route, workdir / f"m-{route[:4]}", args.containers, args.seconds, plugin.pid)
            per_line[route] = result.cpu * 1e6 / max(result.written, 1)
            print(f"{route:<24}{f'{result.delivered:,}/{result.written:,}':>24}{per_line[route]:>18.2f}")
        print(f"logdriver / agent: CPU per line x{per_line[routes[1]] / per_line[routes[0]]:.2f} (target <= 0.75)")
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()

"""Fluentd: logdriver against Docker's built-in ``fluentd`` driver, same server, same run.

The server is the real FluentServer (tests/peers/fluent, ``make peers``) in
count-only mode, which stamps the moment its event count changes. A run's
time is from ``docker start`` to the moment the server holds every line
(end-to-end delivery, not just the container's exit), for:

- Docker's ``fluentd`` driver (synchronous, its default);
- logdriver's fluentd sink with ``overflow=block`` (lossless, like that driver);
- logdriver's fluentd sink under the default policy (``drop-newest``), whose
  drops, if any, are reported;
- logdriver with the server down (default policy): container wall time only,
  against the same container with the server up, to show the container is
  not slowed.

Medians of RUNS interleaved runs; plugin CPU seconds per 1M lines.
Usage: python bench/fluentd_bench.py [--runs 5] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, peak_rss_mib, start_plugin  # bench/bench.py, beside this file
from tests.fluent_peer import FluentPeer
from tests.ports import free_port

PLUGIN = "logdriver-fluentd-bench"


def run(driver: str, opts: dict[str, str], command: str, peer: FluentPeer | None, lines: int) -> tuple[float, float]:
    """(seconds until the server had every line, nan if some were dropped; container seconds)."""
    log_opts = [f"--log-opt={k}={v}" for k, v in opts.items()]
    container = docker("create", f"--log-driver={driver}", *log_opts, IMAGE, "sh", "-c", command)
    baseline = peer.count() if peer else 0
    try:
        started = time.time()
        docker("start", container)
        if docker("wait", container) != "0":
            raise RuntimeError(f"{driver}: container failed")
        exited = time.time()
    finally:
        docker("rm", "-f", container)
    if peer is None:
        return float("nan"), exited - started
    last_count, last_change = -1, time.time()
    while (arrived := peer.reached(baseline + lines)) is None:
        count = peer.count()
        if count != last_count:
            last_count, last_change = count, time.time()
        elif time.time() - last_change > 5:
            return float("nan"), exited - started  # lines were dropped: counted separately
        time.sleep(0.05)
    return arrived - started, exited - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    lines = args.lines
    command = f"seq 1 {lines}"
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-fluentd-bench-", dir="/var/tmp"))
    peer = FluentPeer(workdir, PEER_COUNT_ONLY="1").start()
    address = f"tcp://127.0.0.1:{peer.port}"
    dead = f"tcp://127.0.0.1:{free_port()}"
    plugin = start_plugin(PLUGIN, str(workdir / "state"))
    rows: dict[str, tuple[str, dict[str, str], bool]] = {
        "docker fluentd driver": ("fluentd", {"fluentd-address": address}, True),
        "logdriver fluentd (block)": (
            PLUGIN,
            {"sinks": "fluentd", "fluentd-address": address, "overflow": "block"},
            True,
        ),
        "logdriver fluentd (default)": (PLUGIN, {"sinks": "fluentd", "fluentd-address": address}, True),
        "logdriver fluentd, server down": (PLUGIN, {"sinks": "fluentd", "fluentd-address": dead}, False),
    }
    delivered: dict[str, list[float]] = {k: [] for k in rows}
    wall: dict[str, list[float]] = {k: [] for k in rows}
    cpu: dict[str, list[float]] = {k: [] for k in rows if rows[k][0] == PLUGIN}
    try:
        run(PLUGIN, {"sinks": "fluentd", "fluentd-address": address}, "true", None, 0)  # activate the plugin
        for _ in range(args.runs):
            for label, (driver, opts, up) in rows.items():
                before = cpu_seconds(plugin.pid)
                to_server, container = run(driver, opts, command, peer if up else None, lines)
                delivered[label].append(to_server)
                wall[label].append(container)
                if label in cpu:
                    cpu[label].append(cpu_seconds(plugin.pid) - before)
        print(f"\n## Fluentd: seq 1 {lines} to the real FluentServer (median of {args.runs}; end-to-end)")
        print(f"{'driver':<32}{'lines/s delivered':>18}{'x docker fluentd':>18}{'container s':>13}{'CPU s/1M':>10}")
        reference = statistics.median(delivered["docker fluentd driver"])
        for label in rows:
            seconds = statistics.median(delivered[label])
            rate = f"{lines / seconds:,.0f}" if seconds == seconds else "-"
            ratio = f"{reference / seconds:.2f}" if seconds == seconds else "-"
            cpu_text = f"{statistics.median(cpu[label]) * 1e6 / lines:.2f}" if label in cpu else "-"
            print(f"{label:<32}{rate:>18}{ratio:>18}{statistics.median(wall[label]):>13.2f}{cpu_text:>10}")
        incomplete = {k: sum(1 for t in v if t != t) for k, v in delivered.items() if rows[k][2]}
        print(f"runs where the server did not get every line (drops under drop-newest): {incomplete}")
        down, up = (
            statistics.median(wall["logdriver fluentd, server down"]),
            statistics.median(wall["logdriver fluentd (default)"]),
        )
        print(f"container time, server down / server up (default policy): {down / up:.2f}")
        print(f"plugin peak RSS: {peak_rss_mib(plugin.pid):.0f} MiB")
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        peer.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()

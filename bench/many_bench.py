"""Many containers at a modest rate: host CPU per line, logdriver against json-file, same run.

N containers (busybox, ``--network none``) each write bursts of 10 lines of 90 bytes
every 100 ms (about 100 lines/s each). After a warm-up, the CPU seconds of dockerd and
of the plugin are sampled over a window, and the lines written in that window are
counted exactly: from the plugin's ``logdriver_fifo_entries`` metric for logdriver,
from the json-file log files for json-file. Reported per line written: dockerd's CPU,
the plugin's, and their sum ("host logging CPU") as a ratio to json-file's.

This is the many-containers issue's measurement (50 and 200 containers); the
one-container throughput benchmark is bench/bench.py.

Usage: python bench/many_bench.py [--containers 50] [--window 10] [--warmup 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, dockerd_pid, engine_root, peak_rss_mib, start_plugin  # bench/bench.py
from tests.ports import free_port

PLUGIN = "logdriver-many"
LINE = "x" * 89  # + newline: 90 bytes
BURST = "; ".join([f"echo {LINE}"] * 10)
SCRIPT = f"while :; do {BURST}; sleep 0.1; done"


def fifo_entries(metrics: str) -> int:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("logdriver_fifo_entries_total "):
                return int(float(line.split()[1]))
    raise RuntimeError("no logdriver_fifo_entries_total in /metrics")


def json_file_lines(containers: list[str]) -> int:
    total = 0
    root = engine_root()
    for container in containers:
        for path in glob.glob(f"{root}/containers/{container}/{container}-json.log*"):
            with open(path, "rb") as handle:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda h=handle: h.read(1 << 20), b""))
    return total


def measure(
    driver: str, count: int, warmup: float, window: float, plugin_pid: int | None, metrics: str
) -> dict[str, float]:
    containers = [
        docker("run", "-d", "--network", "none", f"--log-driver={driver}", IMAGE, "sh", "-c", SCRIPT)
        for _ in range(count)
    ]
    try:
        time.sleep(warmup)
        daemon = dockerd_pid()
        lines_before = fifo_entries(metrics) if plugin_pid else json_file_lines(containers)
        daemon_before = cpu_seconds(daemon)
        plugin_before = cpu_seconds(plugin_pid) if plugin_pid else 0.0
        time.sleep(window)
        daemon_cpu = cpu_seconds(daemon) - daemon_before
        plugin_cpu = (cpu_seconds(plugin_pid) - plugin_before) if plugin_pid else 0.0
        lines = (fifo_entries(metrics) if plugin_pid else json_file_lines(containers)) - lines_before
    finally:
        docker("rm", "-f", *containers)
    return {
        "lines_per_s": lines / window,
        "dockerd_us": daemon_cpu / lines * 1e6,
        "plugin_us": plugin_cpu / lines * 1e6,
        "host_us": (daemon_cpu + plugin_cpu) / lines * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="LOGDRIVER_X=value for the plugin (repeatable)")
    args = parser.parse_args()

    metrics = f"127.0.0.1:{free_port()}"
    state = tempfile.mkdtemp(prefix="logdriver-many-", dir="/var/tmp")
    env = dict(item.split("=", 1) for item in args.env)
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_METRICS_ADDRESS=metrics, LOGDRIVER_GC_INTERVAL="5s", **env)
    results: dict[str, list[dict[str, float]]] = {"json-file": [], "logdriver (file + store)": []}
    try:
        docker("run", "--rm", f"--log-driver={PLUGIN}", IMAGE, "true")  # the daemon activates plugins lazily
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            results["json-file"].append(measure("json-file", args.containers, args.warmup, args.window, None, metrics))
            results["logdriver (file + store)"].append(
                measure(PLUGIN, args.containers, args.warmup, args.window, plugin.pid, metrics)
            )
        rss = peak_rss_mib(plugin.pid)
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
    median = {d: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for d, runs in results.items()}
    base = median["json-file"]["host_us"]
    print(
        f"\n## {args.containers} containers x ~100 lines/s (bursts of 10 x 90 B every 100 ms), "
        f"{args.window:g} s window, median of {args.rounds}"
    )
    columns = (
        ("lines/s", 10),
        ("dockerd us/line", 17),
        ("plugin us/line", 16),
        ("host us/line", 14),
        ("x json-file", 13),
    )
    print(f"{'driver':<28}" + "".join(f"{name:>{width}}" for name, width in columns))
    for driver, row in median.items():
        print(
            f"{driver:<28}{row['lines_per_s']:>10,.0f}{row['dockerd_us']:>17.1f}{row['plugin_us']:>16.1f}"
            f"{row['host_us']:>14.1f}{row['host_us'] / base:>13.2f}"
        )
    print(f"plugin peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()

"""Idle containers: what each costs the plugin, and what logdriver adds to ``docker run -d``.

N busybox containers that log nothing (``sleep``) are started one by one with
json-file, removed, then with logdriver (file sink + store). Reported: the median
and 90th percentile of ``docker run -d`` for each driver (same run) and the
plugin's resident memory with all N running (target: <= 200 MiB at 300, and
``docker run -d`` within 10 % of json-file's median).

Usage: python bench/idle_bench.py [--containers 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, docker, start_plugin  # bench/bench.py

PLUGIN = "logdriver-idle"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_many(driver: str, count: int) -> tuple[list[str], list[float]]:
    ids, seconds = [], []
    for _ in range(count):
        started = time.perf_counter()
        ids.append(docker("run", "-d", "--network", "none", f"--log-driver={driver}", IMAGE, "sleep", "3600"))
        seconds.append(time.perf_counter() - started)
    return ids, seconds


def remove(ids: list[str]) -> None:
    for start in range(0, len(ids), 50):
        docker("rm", "-f", *ids[start : start + 50])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=300)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="logdriver-idle-", dir="/var/tmp")
    plugin = start_plugin(PLUGIN, state)
    try:
        docker("run", "--rm", f"--log-driver={PLUGIN}", IMAGE, "true")  # the daemon activates plugins lazily
        idle_rss = rss_mib(plugin.pid)
        ids, json_file = start_many("json-file", args.containers)
        remove(ids)
        ids, ours = start_many(PLUGIN, args.containers)
        time.sleep(2)
        loaded_rss = rss_mib(plugin.pid)
        remove(ids)
    finally:
        plugin.terminate()
        plugin.wait(timeout=60)

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1]

    print(f"\n## {args.containers} idle containers")
    print(f"{'driver':<22}{'docker run -d median':>22}{'p90':>8}{'x json-file':>13}")
    base = statistics.median(json_file)
    for name, values in (("json-file", json_file), ("logdriver", ours)):
        median = statistics.median(values)
        print(f"{name:<22}{median * 1000:>20.0f}ms{p90(values) * 1000:>6.0f}ms{median / base:>13.2f}")
    print(
        f"plugin RSS: {idle_rss:.0f} MiB with none, {loaded_rss:.0f} MiB with {args.containers} "
        f"({(loaded_rss - idle_rss) * 1024 / args.containers:.0f} KiB each)"
    )


if __name__ == "__main__":
    main()

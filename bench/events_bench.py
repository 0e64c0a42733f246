"""The processing stage's cost: multiline=java and parse=json against the same container
with them off, measured in the same run (interleaved), through logdriver's file sink.

Workloads (a file mounted into the container and printed flat out by ``cat``):

- a 40-line Java trace after every 100 ordinary lines, 1M lines in all;
- 1M JSON lines of about 180 bytes, as a structured logger writes them.

For each: lines/s (median wall time of ``docker run`` to ``docker wait``) and the plugin's
CPU seconds per 1M lines, with the stage on and off, and json-file's lines/s for scale.
Targets (issue 22): on/off throughput >= 0.8, on/off CPU <= 1.5.

Usage: python bench/events_bench.py [--runs 3] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PLUGIN, cpu_seconds, run_once, start_plugin  # bench/bench.py

TRACE = [
    "java.lang.IllegalStateException: order 42 is in state SHIPPED",
    *(f"\tat com.example.orders.Service{n}.handle(Service{n}.java:{100 + n})" for n in range(35)),
    "Caused by: java.io.IOException: connection reset",
    "\tat com.example.net.Client.read(Client.java:88)",
    "\tat com.example.net.Client.call(Client.java:41)",
    "\t... 35 more",
]


def java_file(lines: int, path: Path) -> int:
    """Blocks of 100 ordinary lines and a 40-line trace; returns the line count written."""
    written = 0
    with path.open("w") as out:
        while written < lines:
            for n in range(100):
                out.write(f"2026-12-03 10:00:00.{n:03d} INFO  [worker-{n % 8}] request {written + n} served in 3 ms\n")
            out.write("\n".join(TRACE) + "\n")
            written += 100 + len(TRACE)
    return written


def json_file(lines: int, path: Path) -> int:
    with path.open("w") as out:
        for n in range(lines):
            record = {
                # A millisecond apart, in order, as a busy service's lines are.
                "time": f"2026-12-03T10:{n // 60_000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
                "level": "info" if n % 10 else "warn",
                "msg": "request served",
                "trace_id": f"{n:032x}",
                "path": f"/api/orders/{n % 1000}",
                "duration_ms": n % 97,
                "user": {"id": n % 5000, "plan": "pro"},
            }
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return lines


def run(driver: str, opts: dict[str, str], mount: Path) -> float:
    return run_once(driver, "cat /data/lines", opts, args=("-v", f"{mount}:/data:ro"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="logdriver-events-bench-", dir="/var/tmp")
    data = Path(tempfile.mkdtemp(prefix="logdriver-events-data-", dir="/var/tmp"))
    data.chmod(0o755)
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_GC_INTERVAL="5s")
    cases = {
        "java trace every 100 lines": (java_file, {"multiline": "java"}),
        "JSON lines": (json_file, {"parse": "json"}),
    }
    try:
        for name, (make, stage_opts) in cases.items():
            lines = make(args.lines, data / "lines")
            (data / "lines").chmod(0o644)
            configs = {"off": (PLUGIN, {}), "on": (PLUGIN, stage_opts), "json-file": ("json-file", {})}
            run(PLUGIN, stage_opts, data)  # warm-up
            times: dict[str, list[float]] = {c: [] for c in configs}
            cpu: dict[str, list[float]] = {c: [] for c in ("off", "on")}
            for _ in range(args.runs):
                for config, (driver, opts) in configs.items():
                    before = cpu_seconds(plugin.pid)
                    times[config].append(run(driver, opts, data))
                    if config in cpu:
                        cpu[config].append(cpu_seconds(plugin.pid) - before)
            rate = {c: lines / statistics.median(t) for c, t in times.items()}
            per_million = {c: statistics.median(v) * 1_000_000 / lines for c, v in cpu.items()}
            setting = ", ".join(f"{k}={v}" for k, v in stage_opts.items())
            print(f"\n## {name}: {setting}  ({lines:,} lines, median of {args.runs})")
            print(f"{'':<12}{'lines/s':>12}{'plugin CPU s / 1M':>20}")
            for config in configs:
                cpu_text = f"{per_million[config]:>20.2f}" if config in per_million else f"{'':>20}"
                print(f"{config:<12}{rate[config]:>12,.0f}{cpu_text}")
            print(
                f"on/off: throughput x{rate['on'] / rate['off']:.2f} (target >= 0.8), "
                f"CPU x{per_million['on'] / per_million['off']:.2f} (target <= 1.5)"
            )
            sys.stdout.flush()
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        subprocess.run(["rm", "-rf", state, str(data)], check=False)


if __name__ == "__main__":
    main()

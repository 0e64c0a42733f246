"""The line policy's cost (issue 32), measured in the same run.

1. Each step alone, in process, on 200-byte lines that nothing matches (the common case),
   and ``redact=all`` with a secret in one line of ten: CPU microseconds per line through
   the native stage (``Stage.process``), batches of 1,000 lines as the FIFO reader makes
   them. Targets: each step <= 0.3 us a line when nothing matches; ``redact=all`` <= 1 us.
2. End to end, through logdriver's file sink: a container printing 1M 200-byte lines flat
   out with each step on and nothing matching, then every step at once, against the same
   plugin with none (lines/s and the plugin's CPU per 1M lines, interleaved, median of
   ``--runs``; target: each step >= 0.9x off's throughput), and into ``rate-limit=1000/s``
   (target: less plugin CPU than shipping them all).

Usage: python bench/policy_bench.py [--runs 3] [--lines 1000000] [--part 1|2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PLUGIN, cpu_seconds, run_once, start_plugin  # bench/bench.py
from logdriver import LogRecord, batch_of
from logdriver.testing import stage_for

BATCH = 1000


def line(n: int, secret: bool = False) -> bytes:
    """About 200 bytes, as a web service logs a request (no level word, no secret)."""
    text = (
        f"2026-12-06 10:00:{n % 60:02d}.{n % 1000:03d} [worker-{n % 8}] GET /api/orders/{n % 1000} "
        f"from client {n % 977} served 200 in {n % 97} ms, {n % 5000} bytes, cache hit, "
        f"region eu-west, request {n:09d}"
    )
    if secret:
        text = text[:120] + " password=hunter2 card 4111 1111 1111 1111"
    return text.ljust(200).encode()


STEPS: dict[str, dict[str, str]] = {
    "drop-lines (no match)": {"drop-lines": "healthz|readiness"},
    "keep-lines (all match)": {"keep-lines": "GET|POST"},
    "min-level (no level word)": {"min-level": "info"},
    "rate-limit (under it)": {"rate-limit": "10000000/s"},
    "rate-limit + exempt (no match)": {"rate-limit": "10000000/s", "rate-limit-exempt": "^AUDIT "},
    "redact=all (nothing to redact)": {"redact": "all"},
}


def step_costs(lines: int) -> None:
    plain = [batch_of([LogRecord("stdout", n, line(n)) for n in range(start, start + BATCH)])
             for start in range(0, lines, BATCH)]  # fmt: skip
    secrets = [batch_of([LogRecord("stdout", n, line(n, n % 10 == 0)) for n in range(start, start + BATCH)])
               for start in range(0, lines, BATCH)]  # fmt: skip
    cases = {name: (opts, plain) for name, opts in STEPS.items()}
    cases["redact=all (a secret in 1 line of 10)"] = ({"redact": "all"}, secrets)
    print(f"\n## Each step alone: CPU per line, {lines:,} lines of 200 bytes, batches of {BATCH:,}")
    print(f"{'step':<40}{'us/line':>10}{'target':>10}")
    for name, (opts, batches) in cases.items():
        stage = stage_for(opts)
        for batch in batches[:20]:  # warm-up: caches, the DFA's states
            stage.process(batch, 0.0)
        stage = stage_for(opts)
        redacts = stage.redacts_store  # redaction runs apart, before the store, as the FIFO runs it
        started = time.process_time()
        for n, batch in enumerate(batches):
            now = n * 0.01  # 100,000 lines a second on the stage's clock
            stage.process(stage.redact(batch, now) if redacts else batch, now)
        per_line = (time.process_time() - started) / lines * 1e6
        target = "1.0" if name.startswith("redact") else "0.3"
        print(f"{name:<40}{per_line:>10.3f}{target:>10}")
    sys.stdout.flush()


def end_to_end(runs: int, lines: int) -> None:
    state = tempfile.mkdtemp(prefix="logdriver-policy-bench-", dir="/var/tmp")
    data = Path(tempfile.mkdtemp(prefix="logdriver-policy-data-", dir="/var/tmp"))
    data.chmod(0o755)
    with (data / "lines").open("wb") as out:
        for n in range(lines):
            out.write(line(n) + b"\n")
    (data / "lines").chmod(0o644)
    every_step = {**STEPS["drop-lines (no match)"], "min-level": "trace", "redact": "all",
                  "rate-limit": "10000000/s", "rate-limit-exempt": "^AUDIT "}  # fmt: skip
    configs = {
        "off": {},
        **{name: opts for name, opts in STEPS.items() if name != "rate-limit (under it)"},
        "every step": every_step,
        "rate-limit=1000/s": {"rate-limit": "1000/s"},
    }
    plugin = start_plugin(PLUGIN, state, LOGDRIVER_GC_INTERVAL="5s")
    try:
        mount = ("-v", f"{data}:/data:ro")
        run_once(PLUGIN, "cat /data/lines", every_step, args=mount)  # warm-up
        times: dict[str, list[float]] = {c: [] for c in configs}
        cpu: dict[str, list[float]] = {c: [] for c in configs}
        for _ in range(runs):
            for config, opts in configs.items():
                before = cpu_seconds(plugin.pid)
                times[config].append(run_once(PLUGIN, "cat /data/lines", opts, args=mount))
                cpu[config].append(cpu_seconds(plugin.pid) - before)
        json_file = statistics.median(run_once("json-file", "cat /data/lines", args=mount) for _ in range(runs))
        rate = {c: lines / statistics.median(t) for c, t in times.items()}
        per_million = {c: statistics.median(v) * 1_000_000 / lines for c, v in cpu.items()}
        print(f"\n## End to end, file sink: {lines:,} lines of 200 bytes (median of {runs}, interleaved)")
        print(f"{'':<40}{'lines/s':>12}{'x off':>8}{'plugin CPU s / 1M':>20}{'x off':>8}")
        for config in configs:
            print(
                f"{config:<40}{rate[config]:>12,.0f}{rate[config] / rate['off']:>8.2f}"
                f"{per_million[config]:>20.2f}{per_million[config] / per_million['off']:>8.2f}"
            )
        print(f"{'json-file':<40}{lines / json_file:>12,.0f}{lines / json_file / rate['off']:>8.2f}")
        print("targets: each step >= 0.9x off's throughput; rate-limit=1000/s < 1x off's CPU")
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        subprocess.run(["rm", "-rf", state, str(data)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--part", type=int, choices=(1, 2))
    args = parser.parse_args()
    if args.part in (None, 1):
        step_costs(args.lines)
    if args.part in (None, 2):
        end_to_end(args.runs, args.lines)


if __name__ == "__main__":
    main()

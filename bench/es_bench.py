"""Elasticsearch sink: logdriver against the node's own bulk indexing rate, same run.

The node is the real OpenSearch of the tests (tests/es_peer.py, ``make peers``).
Per run, on a fresh index each:

- reference: the same documents logdriver would send (its own encoder, run
  before the clock starts), POSTed as gzip bulk requests of 5000 by a plain
  httpx client, one request at a time, as the sink does;
- logdriver: ``docker run ... seq 1 N`` with ``sinks=elasticsearch`` and a
  disk spool that holds the whole run (lossless), timed from ``docker start`` until the node
  counts N documents.

Medians of RUNS; plugin CPU seconds per 1M documents.
Usage: python bench/es_bench.py [--runs 3] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import IMAGE, cpu_seconds, docker, peak_rss_mib, start_plugin  # bench/bench.py, beside this file
from logdriver import LogRecord, batch_of
from logdriver_sinks.elasticsearch._bulk import BulkEncoder, Target
from tests.es_peer import SearchNode

PLUGIN = "logdriver-es-bench"
BATCH = 5000


def reference_bodies(lines: int, index: str) -> list[bytes]:
    """Gzip bulk bodies of the documents logdriver makes for ``seq 1 N`` (made before timing)."""
    encoder = BulkEncoder(
        "f" * 64,
        {"container": {"id": "f" * 64, "name": "bench", "image": {"name": IMAGE}, "labels": {}}, "host": {"name": "h"}},
        Target(index, data_stream=False),
    )
    now = time.time_ns()
    bodies = []
    for start in range(1, lines + 1, BATCH):
        records = [LogRecord("stdout", now + i, str(i).encode()) for i in range(start, min(start + BATCH, lines + 1))]
        bodies.append(gzip.compress(encoder.encode(batch_of(records)), compresslevel=1))
    return bodies


def run_reference(node: SearchNode, bodies: list[bytes]) -> float:
    headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip", "accept": "application/json"}
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(f"{node.url}/_bulk?filter_path=errors", content=body, headers=headers)
            if response.status_code != 200 or response.json().get("errors"):
                raise RuntimeError(f"reference bulk failed: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - started


# Lossless either way: a queue big enough for the whole run takes lines as fast as the
# container writes them. (A queue that blocks would hold the container's tail in dockerd,
# which drops what it still holds 10 s after the container exits.)
BUFFERS = {
    "memory": {"buffer": "memory", "buffer-max-bytes": "1g", "buffer-max-entries": "10000000"},
    "disk": {"buffer": "disk", "buffer-max-bytes": "1g", "buffer-max-entries": "10000000"},
}


def run_logdriver(node: SearchNode, index: str, lines: int, buffer: str) -> float:
    opts = {"sinks": "elasticsearch", "es-url": node.url, "es-index": index, "flush-timeout": "600s"}
    opts |= BUFFERS[buffer]
    log_opts = [f"--log-opt={k}={v}" for k, v in opts.items()]
    container = docker("create", f"--log-driver={PLUGIN}", *log_opts, IMAGE, "seq", "1", str(lines))
    try:
        started = time.perf_counter()
        docker("start", container)
        last, last_change = -1, started
        # No forced refresh while it runs: that would slow the node for logdriver alone.
        while (count := node.count(index, refresh=False)) < lines:
            if count != last:
                last, last_change = count, time.perf_counter()
            elif time.perf_counter() - last_change > 60:
                raise RuntimeError(f"logdriver delivered {count} of {lines} documents")
            time.sleep(0.25)
        return time.perf_counter() - started
    finally:
        docker("rm", "-f", container)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="logdriver-es-bench-", dir="/var/tmp"))
    node = SearchNode(workdir / "node", heap="2g").start()
    plugin = start_plugin(PLUGIN, str(workdir / "state"))
    try:
        run_logdriver(node, "warmup-logdriver", 20_000, "memory")  # activates the plugin; warms the JIT
        run_reference(node, reference_bodies(20_000, "warmup-reference"))
        reference: list[float] = []
        ours: dict[str, list[float]] = {buffer: [] for buffer in BUFFERS}
        cpu: dict[str, list[float]] = {buffer: [] for buffer in BUFFERS}
        for run in range(args.runs):
            reference.append(run_reference(node, reference_bodies(args.lines, f"reference-{run}")))
            node.delete(f"reference-{run}")
            for buffer in BUFFERS:
                before = cpu_seconds(plugin.pid)
                ours[buffer].append(run_logdriver(node, f"logdriver-{buffer}-{run}", args.lines, buffer))
                cpu[buffer].append(cpu_seconds(plugin.pid) - before)
                node.delete(f"logdriver-{buffer}-{run}")
        ref = statistics.median(reference)
        print(f"\n## Elasticsearch sink: seq 1 {args.lines} into OpenSearch 2.19.1 (median of {args.runs})")
        print(f"{'writer':<44}{'docs/s':>10}{'x node bulk':>13}{'CPU s/1M':>10}")
        print(f"{'plain bulk client (gzip, 5000/request)':<44}{args.lines / ref:>10,.0f}{1.0:>13.2f}{'-':>10}")
        for buffer in BUFFERS:
            mine = statistics.median(ours[buffer])
            cpu_per_million = statistics.median(cpu[buffer]) * 1e6 / args.lines
            label = f"logdriver (docker run, buffer={buffer})"
            print(f"{label:<44}{args.lines / mine:>10,.0f}{ref / mine:>13.2f}{cpu_per_million:>10.2f}")
        print(f"plugin peak RSS: {peak_rss_mib(plugin.pid):.0f} MiB")
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
        node.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()

"""Shared delivery without shared fate, per sink against its real peer.

Two containers ship to one destination through one shared worker, as the plugin runs
them. The bystander writes LINES lines as fast as its queue takes them; the neighbour
writes as many, and its lines either all succeed ("healthy") or all fail at the
destination ("failing"). Reported: the bystander's lines per second in each case and
their ratio (the target: failing / healthy >= 0.90), medians of RUNS, same run.

The failures, one per sink, each one the container's own:
- file: a directory stands where the neighbour's file should be (EISDIR: dead letters);
- elasticsearch (OpenSearch 2.19): the neighbour's index is write-blocked (403 per item);
- kafka (4.4.0): the neighbour's lines are over its kafka-message-max-bytes (refused).
Fluentd is not here: the forward protocol has no failure of one container's lines.

Usage: python bench/shared_fate_bench.py [--runs 3] [--lines 100000] [--sinks file,elasticsearch,kafka]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from logdriver import LogRecord, batch_of
from logdriver.abc import Sink
from logdriver.testing import open_pipeline, running_together
from logdriver_sinks.elasticsearch import ElasticsearchSink
from logdriver_sinks.file import FileSink
from logdriver_sinks.kafka import KafkaSink
from tests.es_peer import SearchNode
from tests.kafka_peer import KafkaCluster

PER_PUT = 1000
BLOCK = {"overflow": "block", "block-timeout": "600s", "batch-max-wait": "0s"}
BYSTANDER = {"ContainerID": "b" * 64, "ContainerName": "/bystander"}
NEIGHBOUR = {"ContainerID": "a" * 64, "ContainerName": "/neighbour"}

# A case: (sink, bystander log-opts, neighbour log-opts, environ, the neighbour's line size)
Case = tuple[Sink, dict[str, str], dict[str, str], dict[str, str], int]


async def bystander_rate(case: Case, lines: int, state: Path) -> float:
    sink, mine, theirs, environ, size = case
    bystander = open_pipeline(sink, {**BLOCK, **mine}, state_dir=state / "b", environ=environ, info=BYSTANDER)
    neighbour = open_pipeline(
        sink,
        {**BLOCK, **theirs, "overflow": "drop-newest"},
        state_dir=state / "n",
        environ=environ,
        info=NEIGHBOUR,
    )
    mine_lines = [LogRecord("stdout", i, b"b%09d " % i + b"y" * 190) for i in range(PER_PUT)]
    their_lines = [LogRecord("stdout", i, b"n%09d " % i + b"z" * (size - 11)) for i in range(PER_PUT)]
    assert bystander.stream.destination == neighbour.stream.destination, "not one destination"
    async with running_together(sink, [bystander, neighbour], flush_timeout=5):
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                for _ in range(lines // PER_PUT):
                    if not neighbour.try_put(batch_of(their_lines)):
                        await neighbour.put(batch_of(their_lines))
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(flood)
            for _ in range(lines // PER_PUT):
                await bystander.put(batch_of(mine_lines))
            while bystander.counters.lines_out < lines:  # noqa: ASYNC110 - a benchmark polling a counter
                await trio.sleep(0.005)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
    return lines / elapsed


@contextmanager
def file_cases(base: Path) -> Iterator[dict[str, Case]]:
    directory = base / "files"
    sink = FileSink(str(directory))
    healthy: Case = (sink, {}, {}, {}, 200)
    yield {"healthy": healthy, "failing": (sink, {}, {"file-format": "json"}, {}, 200)}


def block_neighbour_file(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{'a' * 12}-neighbour.log"
    if target.is_file():
        target.unlink()
    target.mkdir(exist_ok=True)


@contextmanager
def search_cases(base: Path) -> Iterator[dict[str, Case]]:
    node = SearchNode(base / "node").start()
    try:
        healthy_index, blocked = f"healthy-{uuid.uuid4().hex[:6]}", f"blocked-{uuid.uuid4().hex[:6]}"
        node.send("PUT", f"/{blocked}", {"settings": {"index.blocks.write": True}})
        environ = {"LOGDRIVER_ES_URL": node.url}
        sink = ElasticsearchSink()
        mine = {"es-index": f"bystander-{uuid.uuid4().hex[:6]}"}
        yield {
            "healthy": (sink, mine, {"es-index": healthy_index}, environ, 200),
            "failing": (sink, mine, {"es-index": blocked}, environ, 200),
        }
    finally:
        node.stop()


@contextmanager
def kafka_cases(base: Path) -> Iterator[dict[str, Case]]:
    cluster = KafkaCluster(base / "kafka").start()
    try:
        topic = f"fate-{uuid.uuid4().hex[:6]}"
        cluster.create_topic(topic)
        environ = {"LOGDRIVER_KAFKA_BROKERS": cluster.bootstrap}
        sink = KafkaSink()
        # The same settings (one producer, one destination); the neighbour's lines differ.
        mine = {"kafka-topic": topic, "kafka-format": "raw", "kafka-message-max-bytes": "2000"}
        yield {
            "healthy": (sink, mine, mine, environ, 1500),
            "failing": (sink, mine, mine, environ, 3000),  # over kafka-message-max-bytes: refused
        }
    finally:
        cluster.stop()


SINKS: dict[str, Callable[[Path], Any]] = {
    "file": file_cases,
    "elasticsearch": search_cases,
    "kafka": kafka_cases,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--sinks", default=",".join(SINKS))
    args = parser.parse_args()
    rows = []
    for name in args.sinks.split(","):
        with tempfile.TemporaryDirectory(prefix="fate-") as tmp, SINKS[name](Path(tmp)) as cases:
            rates: dict[str, list[float]] = {"healthy": [], "failing": []}
            for run in range(args.runs):
                for kind in ("healthy", "failing"):  # interleaved
                    state = Path(tmp) / f"state-{run}-{kind}"
                    if name == "file" and kind == "failing":
                        block_neighbour_file(Path(tmp) / "files")
                    elif name == "file":
                        target = Path(tmp) / "files" / f"{'a' * 12}-neighbour.log"
                        if target.is_dir():
                            os.rmdir(target)
                    rates[kind].append(trio.run(bystander_rate, cases[kind], args.lines, state))
            healthy, failing = (statistics.median(rates[k]) for k in ("healthy", "failing"))
            rows.append((name, healthy, failing, failing / healthy))
    print(f"{'sink':<15}{'bystander lines/s, neighbour healthy':>40}{'... neighbour failing':>24}{'ratio':>8}")
    for name, healthy, failing, ratio in rows:
        print(f"{name:<15}{healthy:>40,.0f}{failing:>24,.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()

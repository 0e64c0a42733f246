"""The Kafka sink on a three-broker Kafka 4.4 cluster (replication 3, min.insync.replicas 2):
``kill -9`` of the partition leader while two containers log. With the default settings
every line is consumed back exactly once, in order per container, and no line had to
come back to the pipeline: librdkafka's idempotent producer rode the election out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from logdriver import LogRecord, batch_of
from logdriver.testing import close_clients, open_pipeline, running
from logdriver_sinks.kafka import KafkaSink

from ..kafka_peer import KafkaCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-3"), brokers=3).start()
    yield cluster
    cluster.stop()


async def test_kill_9_of_the_leader_loses_and_repeats_nothing(cluster: KafkaCluster, tmp_path: Path) -> None:
    topic = "failover"
    cluster.create_topic(topic)
    leader = cluster.leader(topic)
    sink = KafkaSink()
    config = {"kafka-brokers": cluster.bootstrap, "kafka-topic": topic, "kafka-format": "raw"}
    pipelines = [open_pipeline(sink, config, state_dir=tmp_path / str(index)) for index in range(2)]
    per_container, per_put = 6000, 50  # 30 s at 200 lines/s each: the kill is at 5 s
    killed_at = 0.0

    t0 = time.time_ns()

    async def log(index: int) -> None:
        async with running(pipelines[index], flush_timeout=120):
            for start in range(0, per_container, per_put):
                lines = [LogRecord("stdout", t0 + i, f"{index}:{i}".encode()) for i in range(start, start + per_put)]
                await pipelines[index].put(batch_of(lines))
                await trio.sleep(per_put / 200)

    async def kill() -> None:
        nonlocal killed_at
        await trio.sleep(5)
        killed_at = time.monotonic()
        await trio.to_thread.run_sync(lambda: cluster.stop_node(leader, kill=True))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(kill)
        for index in range(len(pipelines)):
            nursery.start_soon(log, index)
    await close_clients(sink)
    assert killed_at
    for pipeline in pipelines:
        stats = pipeline.counters
        assert (stats.lines_out, stats.dropped, stats.dead_lettered, stats.retried) == (per_container, 0, 0, 0)
    got = await trio.to_thread.run_sync(lambda: cluster.consume([topic], 2 * per_container, timeout=90, idle=3))
    by_container: dict[str, list[int]] = {"0": [], "1": []}
    for message in got:
        index, _, number = message.value().decode().partition(":")
        by_container[index].append(int(number))
    for numbers in by_container.values():
        assert numbers == list(range(per_container))  # every line once, in order
    assert cluster.leader(topic).node_id != leader.node_id
    cluster.start_node(leader)

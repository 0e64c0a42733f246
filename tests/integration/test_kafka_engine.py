"""The Kafka sink on the real engine, into a real Kafka 4.4 broker: every line the container
wrote, as ``docker logs`` shows it, is one message, keyed and labelled with the container's
facts; several containers share one producer."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..kafka_peer import KafkaCluster
from ..traces import JSON_LINE, PRINTING_SCRIPT, expected_messages, mount_trace, trace
from .bursts import BURST, EXPECTED, burst
from .conftest import Plugin, docker, logs

SCRIPT = (
    "seq 1 20000; echo ''; printf 'tab\\there \"quoted\" ünïcode\\n'; "
    'for i in 1 2 3; do echo "err $i" >&2; done; '
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-e2e")).start()
    yield cluster
    cluster.stop()


def test_every_line_the_container_wrote_is_one_message(plugin: Plugin, kafka: KafkaCluster) -> None:
    topic = "e2e-logs"
    kafka.create_topic(topic)
    opts = {
        "sinks": "kafka",
        "kafka-brokers": kafka.bootstrap,
        "kafka-topic": topic,
        "labels": "tier",
        "kafka-headers": "true",
    }
    container = plugin.run("sh", "-c", SCRIPT, opts=opts, args=("--label", "tier=web"))
    delivered, dropped = plugin.closing_counts(container, "kafka")
    stdout, stderr = logs(container)  # what the container wrote, from logdriver's own store
    stdout_lines = stdout.decode().split("\n")
    assert stdout_lines[-2:] == ["x" * 40000, "no newline at the end"]
    expected = Counter(stdout_lines + stderr.decode().splitlines())
    messages = kafka.consume([topic], sum(expected.values()), timeout=60, idle=2)
    records = [json.loads(m.value()) for m in messages]
    assert (delivered, dropped) == (len(records), 0)
    assert Counter(r["message"] for r in records) == expected
    assert [r["message"] for r in records if r["stream"] == "stdout"] == stdout_lines  # in order
    assert {m.key() for m in messages} == {container.encode()}
    name = docker("inspect", "-f", "{{.Name}}", container).stdout.decode().strip().removeprefix("/")
    first = records[0]
    assert (first["container_id"], first["container_name"], first["image"]) == (container, name, "logdriver-test")
    assert first["attrs"] == {"tier": "web"}
    # dockerd copies stdout and stderr in goroutines of their own: no order holds between
    # the two streams (an "err" line came first once), so each stream's header is checked.
    for stream in ("stdout", "stderr"):
        message = next(m for m, r in zip(messages, records, strict=True) if r["stream"] == stream)
        headers = dict(message.headers() or [])
        assert headers["container_id"] == container.encode()
        assert headers["stream"] == stream.encode()
    assert abs(messages[0].timestamp()[1] / 1000 - time.time()) < 600  # the line's own time


def test_containers_share_one_producer(plugin: Plugin, kafka: KafkaCluster) -> None:
    topic = "e2e-shared"
    kafka.create_topic(topic, partitions=3)
    opts = {"sinks": "kafka", "kafka-brokers": kafka.bootstrap, "kafka-topic": topic, "kafka-format": "raw"}
    containers = [plugin.create("sh", "-c", "seq 1 3000", opts=opts) for _ in range(4)]
    docker("start", *containers)
    for container in containers:
        assert docker("wait", container, timeout=300).stdout.strip() == b"0"
        assert plugin.closing_counts(container, "kafka") == (3000, 0)
    messages = kafka.consume([topic], 4 * 3000, timeout=60, idle=2)
    per_key: dict[bytes, list[bytes]] = {}
    for message in messages:
        per_key.setdefault(message.key(), []).append(message.value())
        assert dict(message.headers() or [])["container_id"] == message.key()  # raw lines: headers by default
    assert sorted(per_key) == sorted(c.encode() for c in containers)
    for values in per_key.values():
        assert values == [str(i).encode() for i in range(1, 3001)]  # each container in order
    assert plugin.log().count("kafka: producer opened") == 1  # one for all four containers


def test_a_trace_is_one_message_and_a_json_line_has_fields(plugin: Plugin, kafka: KafkaCluster, tmp_path: Path) -> None:
    lines = trace("java")
    topic = "e2e-events"
    kafka.create_topic(topic)
    opts = {
        "sinks": "kafka",
        "kafka-brokers": kafka.bootstrap,
        "kafka-topic": topic,
        "multiline": "java",
        "parse": "json",
    }
    container = plugin.run(
        "sh", "-c", PRINTING_SCRIPT, opts=opts | {"multiline-timeout": "10s"}, args=mount_trace(lines, tmp_path)
    )
    delivered, dropped = plugin.closing_counts(container, "kafka")
    expected = {source: expected_messages(lines, source) for source in ("stdout", "stderr")}
    messages = kafka.consume([topic], sum(map(len, expected.values())), timeout=60, idle=2)
    records = [json.loads(m.value()) for m in messages]
    assert (delivered, dropped) == (len(records), 0)
    for source, wanted in expected.items():
        assert [r["message"] for r in records if r["stream"] == source] == wanted
    assert [r["multiline"] for r in records if "multiline" in r] == [{"lines": len(lines)}] * 2
    parsed = next(r for r in records if r["message"] == "parsed")
    assert (parsed["level"], parsed["trace_id"], parsed["fields"]) == ("warn", "abc", {"user": JSON_LINE["user"]})


def test_a_burst_with_default_options_reaches_the_broker_whole_and_in_order(
    plugin: Plugin, kafka: KafkaCluster
) -> None:
    kafka.create_topic("e2e-burst")
    burst(plugin, {"sinks": "kafka", "kafka-brokers": kafka.bootstrap, "kafka-topic": "e2e-burst"})
    messages = kafka.consume(["e2e-burst"], BURST, timeout=120, idle=2)
    assert [json.loads(m.value())["message"] for m in messages] == EXPECTED

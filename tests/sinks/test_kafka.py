"""The Kafka sink against a real Apache Kafka 4.4 broker (KRaft, tests/kafka_peer.py), not a fake.

Records, keys, headers and timestamps as a consumer reads them back; topics from
templates; every compression; TLS with a client certificate; SASL PLAIN and
SCRAM-SHA-256 (SCRAM-SHA-512 is in the conformance suite); a broker stopped for
10 s mid-run with the default settings: nothing lost, nothing twice, and no line
back in the pipeline; permanent errors dead-lettered with the broker's reason.
The broker creates no topics on its own, as production clusters are set up.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
import trio

from logdriver import LogRecord, PartialInfo, batch_of
from logdriver.testing import close_clients, close_stream, open_clients, open_pipeline, open_stream, running
from logdriver_sinks.kafka import KafkaSink, KafkaStream

from ..kafka_peer import SASL_PASSWORD, SASL_USER, KafkaCluster
from ..logcheck import plugin_log

pytestmark = pytest.mark.slow

CONTAINER_ID = "ab12" * 16
T0 = 1_764_340_000_123_456_789


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"), secure=True, auto_create=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def topic(kafka: KafkaCluster) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(name)
    return name


@pytest.fixture
async def sink() -> object:
    sink = KafkaSink()
    yield sink
    await close_clients(sink)


def lines(count: int, start: int = 0) -> list[LogRecord]:
    return [
        LogRecord("stderr" if i % 3 == 0 else "stdout", T0 + i * 1_000_001, f"line {i}".encode())
        for i in range(start, start + count)
    ]


def stream_for(sink: KafkaSink, config: dict[str, str], environ: dict[str, str] | None = None) -> KafkaStream:
    info = {"ContainerID": CONTAINER_ID, "ContainerName": "/web", "ContainerLabels": {"app": "shop"}}
    stream = open_stream(sink, config, info=info, environ=environ)
    assert isinstance(stream, KafkaStream)
    return stream


async def consume(kafka: KafkaCluster, topics: list[str], count: int, idle: float = 1.0) -> list[object]:
    return await trio.to_thread.run_sync(lambda: kafka.consume(topics, count, timeout=60, idle=idle))


async def test_records_keys_headers_and_times(kafka: KafkaCluster, topic: str, sink: KafkaSink) -> None:
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic, "labels": "app", "kafka-headers": "true"}
    stream = stream_for(sink, config)
    records = [*lines(100), LogRecord("stdout", T0, b'cut "here"', PartialInfo("pid-1", 2, True))]
    result = await stream.send_batch(batch_of(records))
    assert (list(result.retry), dict(result.rejected)) == ([], {})
    got = await consume(kafka, [topic], len(records))
    await close_stream(stream)
    assert len(got) == len(records)
    first = got[0]
    assert first.key() == CONTAINER_ID.encode()  # type: ignore[attr-defined]
    assert first.timestamp()[1] == T0 // 1_000_000  # type: ignore[attr-defined]
    assert dict(first.headers()) == {  # type: ignore[attr-defined]
        "container_id": CONTAINER_ID.encode(),
        "container_name": b"web",
        "image": b"busybox",
        "stream": b"stderr",
        "app": b"shop",
    }
    assert json.loads(first.value()) == {  # type: ignore[attr-defined]
        "time": "2025-11-28T14:26:40.123456789Z",
        "stream": "stderr",
        "message": "line 0",
        "container_id": CONTAINER_ID,
        "container_name": "web",
        "image": "busybox",
        "attrs": {"app": "shop"},
    }
    assert [json.loads(m.value())["message"] for m in got[:100]] == [f"line {i}" for i in range(100)]  # type: ignore[attr-defined]
    assert json.loads(got[100].value())["partial"] == {"id": "pid-1", "ordinal": 2, "last": True}  # type: ignore[attr-defined]


async def test_raw_values_without_key_or_headers(kafka: KafkaCluster, topic: str, sink: KafkaSink) -> None:
    config = {
        "kafka-brokers": kafka.bootstrap,
        "kafka-topic": topic,
        "kafka-format": "raw",
        "kafka-key": "",
        "kafka-headers": "false",
    }
    stream = stream_for(sink, config)
    await stream.send_batch(batch_of(lines(10)))
    got = await consume(kafka, [topic], 10)
    await close_stream(stream)
    assert [m.value() for m in got] == [f"line {i}".encode() for i in range(10)]  # type: ignore[attr-defined]
    assert {m.key() for m in got} == {None}  # type: ignore[attr-defined]
    assert {m.headers() for m in got} == {None}  # type: ignore[attr-defined]


async def test_topic_and_key_from_templates(kafka: KafkaCluster, sink: KafkaSink) -> None:
    suffix = uuid.uuid4().hex[:6]
    kafka.create_topic(f"logs-web-{suffix}")
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": f"logs-{{{{.Name}}}}-{suffix}", "kafka-key": "{{.Name}}"}
    stream = stream_for(sink, config)
    assert stream.topic == f"logs-web-{suffix}"
    await stream.send_batch(batch_of(lines(5)))
    got = await consume(kafka, [f"logs-web-{suffix}"], 5)
    await close_stream(stream)
    assert {m.key() for m in got} == {b"web"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("compression", ["none", "gzip", "lz4", "zstd"])
async def test_every_compression(kafka: KafkaCluster, topic: str, sink: KafkaSink, compression: str) -> None:
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic, "kafka-compression": compression}
    stream = stream_for(sink, config)
    assert stream.producer.config["compression.type"] == compression
    await stream.send_batch(batch_of(lines(2000)))
    got = await consume(kafka, [topic], 2000)
    await close_stream(stream)
    assert [json.loads(m.value())["message"] for m in got] == [f"line {i}" for i in range(2000)]  # type: ignore[attr-defined]


async def test_tls_with_a_client_certificate(kafka: KafkaCluster, topic: str, sink: KafkaSink) -> None:
    ca, cert, key = kafka.client_files()
    config = {
        "kafka-brokers": kafka.tls_bootstrap,
        "kafka-topic": topic,
        "kafka-tls": "true",
        "kafka-tls-ca": ca,
        "kafka-tls-cert": cert,
        "kafka-tls-key": key,
    }
    stream = stream_for(sink, config)
    result = await stream.send_batch(batch_of(lines(50)))
    assert (list(result.retry), dict(result.rejected)) == ([], {})
    assert len(await consume(kafka, [topic], 50)) == 50
    await close_stream(stream)


async def test_tls_refuses_a_broker_it_cannot_verify(
    kafka: KafkaCluster, topic: str, sink: KafkaSink, tmp_path: Path
) -> None:
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    _, cert, key = kafka.client_files()
    config = {
        "kafka-brokers": kafka.tls_bootstrap,
        "kafka-topic": topic,
        "kafka-tls": "true",
        "kafka-tls-ca": str(other),
        "kafka-tls-cert": cert,
        "kafka-tls-key": key,
        "kafka-message-timeout": "2s",
    }
    stream = stream_for(sink, config)
    result = await stream.send_batch(batch_of(lines(5)))
    await close_stream(stream)
    assert list(result.retry) == list(range(5))  # kept for later, not lost
    assert sink.events["broker_errors"] > 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_sasl(kafka: KafkaCluster, topic: str, sink: KafkaSink, mechanism: str) -> None:
    config = {"kafka-topic": topic}
    # The password goes only to the plugin-wide brokers, over the plugin-wide mechanism.
    environ = {
        "LOGDRIVER_KAFKA_BROKERS": kafka.sasl_bootstrap,
        "LOGDRIVER_KAFKA_SASL_MECHANISM": mechanism,
        "LOGDRIVER_KAFKA_SASL_USERNAME": SASL_USER,
        "LOGDRIVER_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    }
    stream = stream_for(sink, config, environ=environ)
    result = await stream.send_batch(batch_of(lines(20)))
    assert (list(result.retry), dict(result.rejected)) == ([], {})
    assert len(await consume(kafka, [topic], 20)) == 20
    await close_stream(stream)


async def test_a_wrong_password_is_logged_without_it(
    kafka: KafkaCluster, topic: str, sink: KafkaSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-7a1e"
    config = {
        "kafka-topic": topic,
        "kafka-message-timeout": "2s",
    }
    environ = {
        "LOGDRIVER_KAFKA_BROKERS": kafka.sasl_bootstrap,
        "LOGDRIVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "LOGDRIVER_KAFKA_SASL_USERNAME": SASL_USER,
        "LOGDRIVER_KAFKA_SASL_PASSWORD": wrong,
    }
    stream = stream_for(sink, config, environ=environ)
    result = await stream.send_batch(batch_of(lines(3)))
    await close_stream(stream)
    assert list(result.retry) == [0, 1, 2]
    assert "Authentication" in caplog.text or "SASL" in caplog.text
    assert wrong not in caplog.text


async def test_a_broker_stopped_for_10s_loses_and_repeats_nothing(
    kafka: KafkaCluster, topic: str, sink: KafkaSink, tmp_path: Path
) -> None:
    """Default settings: librdkafka holds the lines through the outage (no pipeline retry)."""
    total = 6000
    records = lines(total)
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic, "kafka-format": "raw"}
    pipeline = open_pipeline(sink, config, state_dir=tmp_path)
    async with running(pipeline, flush_timeout=120), trio.open_nursery() as nursery:

        async def outage() -> None:
            await trio.sleep(1)
            await trio.to_thread.run_sync(kafka.stop)
            await trio.sleep(10)
            for node in kafka.nodes:
                kafka.start_node(node)

        nursery.start_soon(outage)
        for start in range(0, total, 100):
            await pipeline.put(batch_of(records[start : start + 100]))
            await trio.sleep(0.03)
    await trio.to_thread.run_sync(kafka.wait_ready)
    stats = pipeline.counters
    assert (stats.lines_out, stats.dropped, stats.dead_lettered, stats.retried) == (total, 0, 0, 0)
    got = await consume(kafka, [topic], total, idle=2.0)
    values = [m.value() for m in got]  # type: ignore[attr-defined]
    assert values == [r.line for r in records]  # every line once, in order
    assert Counter(values).most_common(1)[0][1] == 1


async def test_permanent_errors_go_to_the_dead_letters_with_the_reason(
    kafka: KafkaCluster, topic: str, sink: KafkaSink, tmp_path: Path
) -> None:
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic, "kafka-message-max-bytes": "2k"}
    pipeline = open_pipeline(sink, config, state_dir=tmp_path)
    async with running(pipeline):
        await pipeline.put(batch_of([*lines(3), LogRecord("stdout", T0, b"x" * 5000), *lines(3, 3)]))
    assert (pipeline.counters.lines_out, pipeline.counters.dead_lettered) == (6, 1)
    dead = [
        json.loads(line)
        for path in (tmp_path / "deadletter").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert "MSG_SIZE_TOO_LARGE" in json.dumps(dead)
    got = await consume(kafka, [topic], 6)
    assert [json.loads(m.value())["message"] for m in got] == [f"line {i}" for i in range(6)]  # type: ignore[attr-defined]


async def test_an_unknown_topic_is_dead_lettered(kafka: KafkaCluster, sink: KafkaSink, tmp_path: Path) -> None:
    """The broker creates no topics here: librdkafka gives up on the topic, with its reason."""
    config = {"kafka-brokers": kafka.bootstrap, "kafka-topic": f"missing-{uuid.uuid4().hex[:6]}"}
    pipeline = open_pipeline(sink, config, state_dir=tmp_path)
    with trio.fail_after(120):
        async with running(pipeline):
            await pipeline.put(batch_of(lines(4)))
    assert pipeline.counters.dead_lettered == 4
    dead = (tmp_path / "deadletter").rglob("*.jsonl")
    assert "UNKNOWN_TOPIC" in "".join(path.read_text() for path in dead)


async def test_a_thousand_requests_log_nothing_at_info(kafka: KafkaCluster, topic: str, sink: KafkaSink) -> None:
    stream = stream_for(sink, {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic})
    await stream.send_batch(batch_of(lines(1)))  # the producer is open: its one INFO line is logged
    with plugin_log(LOGDRIVER_LOG_LEVEL="info") as out:
        for start in range(0, 10_000, 10):
            result = await stream.send_batch(batch_of(lines(10, start)))
            assert (list(result.retry), dict(result.rejected)) == ([], {})
    await close_stream(stream)
    assert out.getvalue() == ""


async def test_containers_on_one_cluster_share_a_producer(kafka: KafkaCluster, topic: str, sink: KafkaSink) -> None:
    first = stream_for(sink, {"kafka-brokers": kafka.bootstrap, "kafka-topic": topic})
    second = open_stream(sink, {"kafka-brokers": kafka.bootstrap, "kafka-topic": f"{topic}-other"})
    other = open_stream(sink, {"kafka-brokers": kafka.bootstrap, "kafka-compression": "zstd"})
    assert isinstance(second, KafkaStream)
    assert isinstance(other, KafkaStream)
    assert first.producer is second.producer
    assert other.producer is not first.producer
    assert open_clients(sink) == 2
    await close_clients(sink)
    assert not sink.open_producers  # a closed producer leaves the sink's count


async def test_a_container_lands_where_librdkafkas_own_partitioner_puts_its_key(
    kafka: KafkaCluster, sink: KafkaSink
) -> None:
    """The sink picks a keyed part's partition once (crc32(key) % partitions) instead of
    librdkafka hashing every line: the same partition librdkafka's default would choose."""
    ours, theirs = f"p-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    for name in (ours, theirs):
        kafka.create_topic(name, partitions=6)
    ids = [uuid.uuid4().hex * 2 for _ in range(12)]
    for container_id in ids:
        info = {"ContainerID": container_id, "ContainerName": "/web"}
        stream = open_stream(sink, {"kafka-brokers": kafka.bootstrap, "kafka-topic": ours}, info=info)
        result = await stream.send_batch(batch_of(lines(3)))
        assert (list(result.retry), dict(result.rejected)) == ([], {})
        assert isinstance(stream, KafkaStream)
        assert stream.producer.partitions.get(ours, trio.current_time()) == 6  # chosen by the sink
        await close_stream(stream)
    reference = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap})
    for container_id in ids:
        reference.produce(theirs, b"x", container_id.encode())
    assert reference.flush(30) == 0
    placed = {(m.topic(), m.key()): m.partition() for m in await consume(kafka, [ours, theirs], 12 * 4)}  # type: ignore[attr-defined]
    assert len({placed[ours, i.encode()] for i in ids}) > 1  # the keys spread over the partitions
    assert {i: placed[ours, i.encode()] for i in ids} == {i: placed[theirs, i.encode()] for i in ids}

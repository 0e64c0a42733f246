"""Kafka log-opts: what docker run refuses (naming the option), and the librdkafka settings made
from them. No broker: opening a stream only starts librdkafka's threads, it connects later."""

from __future__ import annotations

import pytest
import trio
from confluent_kafka import KafkaError, KafkaException

from logdriver import ConfigError, Settings, batch_of
from logdriver.testing import close_clients, close_stream, context_for, open_stream, sample_records
from logdriver_sinks.kafka import (
    MAX_BROKERS,
    MAX_PRODUCERS,
    KafkaConfig,
    KafkaSink,
    KafkaStream,
    parse_brokers,
    producer_config,
)
from logdriver_sinks.kafka._producer import Request, SharedProducer


@pytest.mark.parametrize(
    ("text", "expected"),
    [("kafka:9092", "kafka:9092"), (" a:1 , b:2 ", "a:1,b:2"), ("[::1]:9092", "[::1]:9092")],
)
def test_broker_lists(text: str, expected: str) -> None:
    assert parse_brokers(text) == expected


@pytest.mark.parametrize("text", ["", "kafka", "kafka:", "kafka:0", "kafka:65536", ":9092", "kafka:90x2", "a/b:1"])
def test_bad_broker_lists(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_brokers(text)


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"kafka-brokers": "nohost"}, "kafka-brokers"),
        ({"kafka-topic": "logs/{{.Name}}"}, "kafka-topic"),  # "/" is not allowed in a topic
        ({"kafka-topic": "{{.Nope}}"}, "kafka-topic"),
        ({"kafka-key": "{{.Name"}, "kafka-key"),
        ({"kafka-format": "xml"}, "kafka-format"),
        ({"kafka-compression": "brotli"}, "kafka-compression"),
        ({"kafka-acks": "1"}, "kafka-acks"),  # idempotence needs acks=all
        ({"kafka-max-in-flight": "6"}, "kafka-max-in-flight"),
        ({"kafka-message-timeout": "0s"}, "kafka-message-timeout"),
        ({"kafka-message-max-bytes": "10"}, "kafka-message-max-bytes"),
        ({"kafka-tls": "true", "kafka-tls-ca": "/nonexistent.pem"}, "kafka-tls-ca"),
        ({"kafka-sasl-mechanism": "GSSAPI"}, "kafka-sasl-mechanism"),
        ({"kafka-sasl-mechanism": "PLAIN"}, "kafka-sasl-username"),
        ({"kafka-sasl-mechanism": "PLAIN", "kafka-sasl-username": "u"}, "LOGDRIVER_KAFKA_SASL_PASSWORD"),
    ],
)
async def test_a_bad_value_fails_docker_run_naming_the_option(config: dict[str, str], option: str) -> None:
    sink = KafkaSink()
    with pytest.raises(ConfigError) as caught:
        open_stream(sink, config)
    assert caught.value.option == option
    await close_clients(sink)


def test_the_sasl_password_is_not_a_log_opt() -> None:
    """Log-opts show in docker inspect: the password is only a plugin setting, and the
    refusal does not repeat it."""
    with pytest.raises(ConfigError, match="LOGDRIVER_KAFKA_SASL_PASSWORD") as caught:
        context_for(KafkaSink(), {"kafka-sasl-password": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)


async def test_defaults_are_idempotent_acks_all_and_the_full_container_id_as_key() -> None:
    sink = KafkaSink()
    stream = open_stream(sink, {"kafka-brokers": "127.0.0.1:1"})
    assert isinstance(stream, KafkaStream)
    config = stream.producer.config
    assert (config["enable.idempotence"], config["acks"], config["security.protocol"]) == (True, "all", "PLAINTEXT")
    assert config["compression.type"] == "lz4"
    assert stream.key is not None
    assert len(stream.key) == 64
    assert stream.topic == "docker-logs"
    assert stream.headers == (None, None, None)  # the JSON record carries the container's fields
    await close_stream(stream)
    await close_clients(sink)


def test_tls_and_sasl_make_sasl_ssl() -> None:
    # The operator's transport, plugin-wide (a container repeating it changes nothing).
    context = context_for(
        KafkaSink(),
        {"kafka-tls": "true", "kafka-sasl-mechanism": "SCRAM-SHA-512"},
        environ={"LOGDRIVER_KAFKA_SASL_PASSWORD": "p", "LOGDRIVER_KAFKA_TLS": "true",
                 "LOGDRIVER_KAFKA_TLS_VERIFY": "false", "LOGDRIVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                 "LOGDRIVER_KAFKA_SASL_USERNAME": "u"},
    )  # fmt: skip
    config = producer_config(context.config(KafkaConfig))
    assert config["security.protocol"] == "SASL_SSL"
    assert (config["enable.ssl.certificate.verification"], config["ssl.endpoint.identification.algorithm"]) == (
        False,
        "none",
    )
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == ("SCRAM-SHA-512", "u", "p")


async def test_a_dead_cluster_never_blocks_the_event_loop() -> None:
    """Nothing listens: the request waits for librdkafka's timeout while trio keeps running."""
    sink = KafkaSink()
    stream = open_stream(sink, {"kafka-brokers": "127.0.0.1:1", "kafka-message-timeout": "1s"})
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.05)
            ticks += 1

    from logdriver import batch_of
    from logdriver.testing import sample_records

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        result = await stream.send_batch(batch_of(sample_records(10)))
        nursery.cancel_scope.cancel()
    assert list(result.retry) == list(range(10))
    assert ticks >= 10
    await close_stream(stream)
    await close_clients(sink)


class FakeReport:
    """Stands in for the ``Message`` of a delivery report: only what ``Request`` reads."""

    def __init__(self, topic: str, key: bytes | None, value: bytes, timestamp: int) -> None:
        self._identity = (topic, key, value, timestamp)

    def topic(self) -> str:
        return self._identity[0]

    def key(self) -> bytes | None:
        return self._identity[1]

    def value(self) -> bytes:
        return self._identity[2]

    def timestamp(self) -> tuple[int, int]:
        return (1, self._identity[3])


def test_failure_reports_find_their_lines() -> None:
    """Reports carry no index: a failed message is matched to its line by topic, key,
    value and timestamp; equal messages take the equal lines in order."""
    from confluent_kafka import KafkaError

    from logdriver_sinks.kafka._producer import Outgoing, Request

    parts = [
        Outgoing("a", b"k1", (None, None), [(b"x", 1, False), (b"dup", 2, False), (b"dup", 2, False)]),
        Outgoing("b", b"k2", (None, None), [(b"x", 1, False), (b"y", 3, True)]),
    ]
    request = Request()
    request.report(None, FakeReport("a", b"k1", b"x", 1))  # delivered: no effect
    request.report(KafkaError(KafkaError._MSG_TIMED_OUT), FakeReport("a", b"k1", b"dup", 2))  # type: ignore[arg-type]
    request.report(KafkaError(KafkaError._MSG_TIMED_OUT), FakeReport("a", b"k1", b"dup", 2))  # type: ignore[arg-type]
    request.report(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), FakeReport("b", b"k2", b"x", 1))  # type: ignore[arg-type]
    request.settle(parts)
    assert request.retry == [1, 2]
    assert list(request.rejected) == [3]
    assert "MSG_SIZE_TOO_LARGE" in request.rejected[3]

    stray = Request()  # a report that matches no line: the whole request is sent again
    stray.report(KafkaError(KafkaError._MSG_TIMED_OUT), FakeReport("c", None, b"?", 9))  # type: ignore[arg-type]
    stray.settle(parts)
    assert stray.retry == [0, 1, 2, 3, 4]


async def test_a_requests_failures_go_back_to_their_containers() -> None:
    """One request carries several containers' parts: each verdict holds its own lines' indexes."""
    from logdriver import batch_of
    from logdriver.testing import sample_records
    from logdriver_sinks.kafka._producer import Request

    sink = KafkaSink()
    streams = [open_stream(sink, {"kafka-brokers": "127.0.0.1:1"}) for _ in range(3)]
    assert isinstance(streams[0], KafkaStream)
    answer = Request()
    answer.retry[:] = [0, 4, 5, 9]  # parts of 3, 4 and 3 lines: indexes 0-2, 3-6, 7-9
    answer.rejected.update({3: "too large", 8: "unknown topic"})

    async def send(parts: object) -> Request:
        return answer

    streams[0].producer.send = send  # type: ignore[method-assign]
    batches = [batch_of(sample_records(n)) for n in (3, 4, 3)]
    results = await sink.send_together(list(zip(streams, batches, strict=True)))
    assert [(list(r.retry), dict(r.rejected)) for r in results] == [
        ([0], {}),
        ([1, 2], {0: "too large"}),
        ([2], {1: "unknown topic"}),
    ]
    for stream in streams:
        await close_stream(stream)
    await close_clients(sink)


def test_broker_lists_and_producers_are_bounded() -> None:
    # Audit finding: one 64 KB log-opt of 4,000 brokers made 5,024 threads and 10,044 fds.
    with pytest.raises(ConfigError, match="kafka-brokers"):
        context_for(KafkaSink(), {"kafka-brokers": ",".join(f"b{i}:9092" for i in range(4000))})
    with pytest.raises(ValueError, match="twice"):
        parse_brokers("a:1,a:1")
    assert parse_brokers(",".join(f"b{i}:9092" for i in range(MAX_BROKERS)))
    environ = {"LOGDRIVER_KAFKA_BROKERS": "127.0.0.1:9092"}
    sink = KafkaSink.from_settings(Settings.from_env({"LOGDRIVER_STATE_DIR": "/s", **environ}))
    streams = [open_stream(sink, {"kafka-brokers": f"127.0.0.1:{port}"}) for port in range(1, MAX_PRODUCERS)]
    with pytest.raises(ConfigError, match="kafka-brokers") as refused:
        open_stream(sink, {"kafka-brokers": "127.0.0.1:9999"})
    assert f"{MAX_PRODUCERS} producers" in str(refused.value)
    same = open_stream(sink, {"kafka-brokers": "127.0.0.1:1"})  # an open producer's settings: shared
    # Finding 9 of issue 30: containers' own producers (left draining by stopped containers)
    # never take the operator's place: the plugin-wide brokers still get their producer.
    operator = open_stream(sink, {}, environ=environ)
    assert same.producer is streams[0].producer
    assert operator.producer not in [s.producer for s in streams]
    trio.run(close_clients, sink)
    open_stream(sink, {"kafka-brokers": "127.0.0.1:9999"})  # closed producers make room
    trio.run(close_clients, sink)


async def test_requests_to_a_silent_broker_hold_none_of_trios_shared_threads() -> None:
    # Audit finding: 40 containers on a broker that never answers held trio's 40 shared
    # thread tokens, and a Fluentd sink's DNS lookup found none.
    sink = KafkaSink()
    streams = [
        open_stream(sink, {"kafka-brokers": f"127.0.0.1:{port}", "kafka-message-timeout": "3s"}) for port in range(1, 6)
    ]
    shared = trio.to_thread.current_default_thread_limiter()
    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(stream.send_batch, batch_of(sample_records(5)))
        await trio.sleep(0.5)
        assert sink.threads.borrowed_tokens == len(streams)  # each waits in the sink's own pool
        assert shared.borrowed_tokens == 0
        await trio.socket.getaddrinfo("localhost", 24224)  # another sink's DNS is served
    for stream in streams:
        await close_stream(stream)
    await close_clients(sink)


class _ProducerFake:
    """Records what is queued; refuses one call as a full queue and one line as too large."""

    def __init__(self, full_at: int, too_large: bytes) -> None:
        self.calls = 0
        self.full_at = full_at
        self.too_large = too_large
        self.queued: list[tuple[bytes, int, object]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None, *rest: object) -> None:
        self.calls += 1
        if self.calls == self.full_at:
            raise BufferError("queue full")
        if value == self.too_large:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        partition, callback, on_delivery, timestamp, headers = rest
        assert (partition, on_delivery) == (-1, None)
        assert callable(callback)
        self.queued.append((value, timestamp, headers))  # type: ignore[arg-type]


def test_a_full_queue_is_waited_out_and_a_refused_line_rejected_in_order() -> None:
    """The produce loop's slow paths: after a full queue the same line is queued again, a line
    librdkafka refuses is rejected by its request index, and every other line is queued once, in order."""
    lines = [(f"line {i}".encode(), 1000 + i, i % 3) for i in range(5000)]
    fake = _ProducerFake(full_at=3000, too_large=b"line 4321")
    events = {"full_queue_waits": 0, "broker_errors": 0}
    producer = SharedProducer(("key",), {"bootstrap.servers": "127.0.0.1:1"}, 5.0, events, trio.CapacityLimiter(1))
    request = Request()

    async def main() -> None:
        await producer._produce(fake, request, 7, ("topic", b"k", -1, ("out", "err", "mark")), lines)  # type: ignore[arg-type]
        await trio.to_thread.run_sync(producer.client.close, 0.0)

    trio.run(main)
    expected = [(value, ts, ("out", "err", "mark")[stream]) for value, ts, stream in lines if value != b"line 4321"]
    assert fake.queued == expected
    assert events["full_queue_waits"] == 1
    assert list(request.rejected) == [7 + 4321]
    assert request.retry == []

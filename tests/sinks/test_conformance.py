"""Every sink passes the shared contract (``logdriver.testing.SinkConformance``) against a real destination:
a directory for the file sink, FluentServer for Fluentd, an OpenSearch node for Elasticsearch,
a Kafka 4.4 broker for Kafka, the OpenTelemetry Collector for OTLP, VictoriaLogs for Loki."""

from __future__ import annotations

import contextlib
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from logdriver.testing import SinkConformance, close_clients
from logdriver_sinks.elasticsearch import ElasticsearchSink
from logdriver_sinks.file import FileSink
from logdriver_sinks.fluentd import FluentdSink
from logdriver_sinks.kafka import KafkaSink
from logdriver_sinks.loki import LokiSink
from logdriver_sinks.otlp import OtlpSink

from ..es_peer import SERVERS, SearchNode
from ..fluent_peer import FluentPeer
from ..kafka_peer import SASL_PASSWORD, SASL_USER, KafkaCluster
from ..loki_peer import VictoriaLogsPeer
from ..otel_peer import CollectorPeer


class FileSinkPeer:
    """A directory on a small tmpfs of its own; the outage is a full disk."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.directory = mount / "files"
        self.ballast = mount / "ballast"
        self.config: Mapping[str, str] = {"file-format": "text"}
        self.environ: Mapping[str, str] = {}
        self.elsewhere = None  # the directory is the sink's own, not a log-opt
        self.secrets: Sequence[str] = ()
        self.bad_option = ("file-max-size", "1" * 400)
        self.exactly_once = True

    def received(self, count: int, timeout: float) -> list[bytes]:
        return [line for path in sorted(self.directory.glob("*.log*")) for line in path.read_bytes().splitlines()]

    def stop(self) -> None:
        with open(self.ballast, "wb") as ballast, contextlib.suppress(OSError):  # ENOSPC: full
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()

    def start(self) -> None:
        self.ballast.unlink()


class TestFileSink(SinkConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[FileSinkPeer]:
        mount = tmp_path / "disk"
        mount.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=False).returncode:
            pytest.skip("needs root to mount a tmpfs")
        try:
            yield FileSinkPeer(mount)
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)

    @pytest.fixture
    def sink(self, peer: FileSinkPeer) -> FileSink:
        return FileSink(str(peer.directory))


class FluentSinkPeer:
    """The real FluentServer, with the shared-key handshake on; the outage stops the process."""

    KEY = "conformance-shared-key-do-not-log"

    def __init__(self, peer: FluentPeer) -> None:
        self.peer = peer
        # The destination is plugin-wide, as the operator sets it: its credentials go there only.
        self.config: Mapping[str, str] = {}
        self.environ: Mapping[str, str] = {
            "LOGDRIVER_FLUENTD_ADDRESS": peer.address,
            "LOGDRIVER_FLUENTD_SHARED_KEY": self.KEY,
        }
        self.elsewhere = ("fluentd-address", "tcp://127.0.0.1:1")
        self.secrets: Sequence[str] = (self.KEY,)
        self.bad_option = ("fluentd-address", "gopher://x")
        self.exactly_once = False  # a batch written but not acked before the outage is sent again

    def received(self, count: int, timeout: float) -> list[bytes]:
        events = self.peer.wait_for(count, timeout=timeout)
        return [str(event["record"]["log"]).encode() for event in events]

    def stop(self) -> None:
        self.peer.stop()

    def start(self) -> None:
        self.peer.start()


class TestFluentdSink(SinkConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[FluentSinkPeer]:
        with FluentPeer(tmp_path, PEER_SHARED_KEY=FluentSinkPeer.KEY) as peer:
            yield FluentSinkPeer(peer)

    @pytest.fixture
    async def sink(self) -> object:
        sink = FluentdSink()
        yield sink
        await close_clients(sink)


class SearchSinkPeer:
    """An index on a real OpenSearch or Elasticsearch node; the outage stops the node (on the same port)."""

    KEY = "Y29uZm9ybWFuY2U6c2VjcmV0LWFwaS1rZXk="

    def __init__(self, node: SearchNode) -> None:
        self.node = node
        self.index = f"conformance-{uuid.uuid4().hex[:8]}"
        self.config: Mapping[str, str] = {"es-index": self.index, "es-request-timeout": "5s"}
        # The node has no security: the key is ignored there.
        self.environ: Mapping[str, str] = {"LOGDRIVER_ES_URL": node.url, "LOGDRIVER_ES_API_KEY": self.KEY}
        self.elsewhere = ("es-url", "http://127.0.0.1:1")
        self.secrets: Sequence[str] = (self.KEY,)
        self.bad_option = ("es-index", "logs-{{foo .Name}}")
        self.exactly_once = True  # deterministic ids: a resend is a 409

    def received(self, count: int, timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            messages = [str(d["message"]).encode() for d in self.node.documents(self.index)]
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            time.sleep(0.5)

    def stop(self) -> None:
        self.node.stop()

    def start(self) -> None:
        self.node.start()


@pytest.fixture(scope="module", params=SERVERS, ids=lambda server: server.name)
def search_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchNode]:
    node = SearchNode(tmp_path_factory.mktemp(f"{request.param.peer}-conformance"), server=request.param).start()
    yield node
    node.stop()


class TestElasticsearchSink(SinkConformance):
    @pytest.fixture
    def peer(self, search_node: SearchNode) -> SearchSinkPeer:
        return SearchSinkPeer(search_node)

    @pytest.fixture
    async def sink(self) -> object:
        sink = ElasticsearchSink()
        yield sink
        await close_clients(sink)


class KafkaSinkPeer:
    """A topic on a real Kafka 4.4 broker, over SASL/SCRAM; the outage stops the broker.

    ``kafka-message-timeout`` is 3 s here, shorter than the outage, so that lines come back
    to the pipeline (retried, or dead-lettered in the secrets test) instead of waiting in
    librdkafka, which would ride a 5 s outage out on its own with the default.
    """

    def __init__(self, cluster: KafkaCluster) -> None:
        self.cluster = cluster
        self.topic = f"conformance-{uuid.uuid4().hex[:8]}"
        cluster.create_topic(self.topic)
        self.config: Mapping[str, str] = {
            "kafka-topic": self.topic,
            "kafka-format": "raw",
            "kafka-message-timeout": "3s",
        }
        # The operator's brokers and how they are reached: plugin-wide, as the password must be.
        self.environ: Mapping[str, str] = {
            "LOGDRIVER_KAFKA_BROKERS": cluster.sasl_bootstrap,
            "LOGDRIVER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "LOGDRIVER_KAFKA_SASL_USERNAME": SASL_USER,
            "LOGDRIVER_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        }
        self.elsewhere = ("kafka-brokers", "127.0.0.1:1")
        self.secrets: Sequence[str] = (SASL_PASSWORD,)
        self.bad_option = ("kafka-topic", "logs/{{.Name}}")
        self.exactly_once = True  # the idempotent producer; a timed-out line was never written

    def received(self, count: int, timeout: float) -> list[bytes]:
        return [message.value() or b"" for message in self.cluster.consume([self.topic], count, timeout, idle=1.0)]

    def stop(self) -> None:
        self.cluster.stop()

    def start(self) -> None:
        for node in self.cluster.nodes:
            self.cluster.start_node(node)
        self.cluster.wait_ready()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-conformance"), secure=True).start()
    yield cluster
    cluster.stop()


class TestKafkaSink(SinkConformance):
    @pytest.fixture
    def peer(self, kafka: KafkaCluster) -> KafkaSinkPeer:
        return KafkaSinkPeer(kafka)

    @pytest.fixture
    async def sink(self) -> object:
        sink = KafkaSink()
        yield sink
        await close_clients(sink)


class CollectorSinkPeer:
    """A real OpenTelemetry Collector (OTLP/HTTP receiver, file exporter); the outage stops it.

    A request the Collector took whose answer was lost is sent again: at-least-once."""

    def __init__(self, collector: CollectorPeer) -> None:
        self.collector = collector
        self.config: Mapping[str, str] = {}
        self.environ: Mapping[str, str] = {
            "LOGDRIVER_OTLP_ENDPOINT": collector.endpoint,  # plugin-wide: the credentials go there
            "LOGDRIVER_OTLP_HEADERS": f"authorization=Bearer {OTLP_TOKEN}",
        }
        self.elsewhere = ("otlp-endpoint", "http://127.0.0.1:1")
        self.secrets: Sequence[str] = (OTLP_TOKEN,)
        self.bad_option = ("otlp-compression", "brotli")
        self.exactly_once = False
        self.skip = len(collector.records())  # what earlier tests of the module exported

    def received(self, count: int, timeout: float) -> list[bytes]:
        records = self.collector.wait_for(self.skip + count, timeout)[self.skip :]
        return [str(record["text"]).encode() for record in records]

    def stop(self) -> None:
        self.collector.stop()

    def start(self) -> None:
        self.collector.start()


OTLP_TOKEN = "otlp-conformance-s3cret"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorPeer]:
    with CollectorPeer(tmp_path_factory.mktemp("otelcol")) as peer:
        yield peer


class TestOtlpSink(SinkConformance):
    @pytest.fixture
    def peer(self, collector: CollectorPeer) -> CollectorSinkPeer:
        return CollectorSinkPeer(collector)

    @pytest.fixture
    async def sink(self) -> object:
        sink = OtlpSink()
        yield sink
        await close_clients(sink)


LOKI_PASSWORD = "loki-conformance-s3cret"


class LokiSinkPeer:
    """VictoriaLogs taking Loki pushes (protobuf + snappy); the outage stops it. Each test's
    lines are a stream of their own (a ``job`` label), read back in time order.

    A push VictoriaLogs stored whose answer was lost is sent again: at-least-once."""

    def __init__(self, victoria: VictoriaLogsPeer) -> None:
        self.victoria = victoria
        self.job = f"conformance-{uuid.uuid4().hex[:10]}"
        self.config: Mapping[str, str] = {"loki-external-labels": f"job={self.job}"}
        self.environ: Mapping[str, str] = {
            "LOGDRIVER_LOKI_URL": victoria.push_url,  # plugin-wide: the credentials go there
            "LOGDRIVER_LOKI_USERNAME": "shipper",
            "LOGDRIVER_LOKI_PASSWORD": LOKI_PASSWORD,
        }
        self.elsewhere = ("loki-url", "http://127.0.0.1:1/loki/api/v1/push")
        self.secrets: Sequence[str] = (LOKI_PASSWORD,)
        self.bad_option = ("loki-format", "xml")
        self.exactly_once = False

    def received(self, count: int, timeout: float) -> list[bytes]:
        query = f'_stream:{{job="{self.job}"}}'
        self.victoria.wait_for(count, query, timeout)
        rows = self.victoria.query(f"{query} | sort by (_time)")
        return [str(row["_msg"]).encode() for row in rows]

    def stop(self) -> None:
        self.victoria.stop()

    def start(self) -> None:
        self.victoria.start()


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaLogsPeer]:
    peer = VictoriaLogsPeer(tmp_path_factory.mktemp("victorialogs")).start()
    yield peer
    peer.stop()


class TestLokiSink(SinkConformance):
    @pytest.fixture
    def peer(self, victoria: VictoriaLogsPeer) -> LokiSinkPeer:
        return LokiSinkPeer(victoria)

    @pytest.fixture
    async def sink(self) -> object:
        sink = LokiSink()
        yield sink
        await close_clients(sink)


def test_every_registered_sink_runs_the_suite() -> None:
    """A sink registers in one place, its entry point; this module must then have its class
    (``Test<Name>Sink``)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    registered = set(pyproject["project"]["entry-points"]["logdriver.sinks"]) - {"discard"}
    tested = {
        cls.__name__.removeprefix("Test").removesuffix("Sink").lower() for cls in SinkConformance.__subclasses__()
    }
    assert registered <= tested, f"no conformance class for {sorted(registered - tested)}"

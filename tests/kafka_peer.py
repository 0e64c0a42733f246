"""KafkaCluster: real Apache Kafka 4.4.0 brokers in KRaft mode (jars from Maven Central).

Not a fake: ``kafka.Kafka`` itself, from tests/peers/kafka (``make peers`` resolves
the jars with Maven), on 127.0.0.1 with no ZooKeeper. Each node is broker and
controller at once; ``controller.quorum.voters`` names them all and
``kafka.tools.StorageTool format`` prepares each log directory. Broker 1 also
listens with SASL (PLAIN and SCRAM-SHA-256/512, user ``SASL_USER``) and with TLS
(client certificate required) when the cluster is made with ``secure=True``.

Start, stop, ``kill -9`` and restart keep a node's ports and data, so a broker that
comes back rejoins with its partitions. Lines are read back with confluent-kafka's
consumer, an independent client of the same brokers.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import trustme
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives import serialization

from .ports import free_port

PEER_DIR = Path(__file__).parent / "peers" / "kafka"
JARS = PEER_DIR / "target" / "dependency"
SASL_USER = "logdriver"
SASL_PASSWORD = "kafka-test-secret-9f2c"  # a test secret: the tests check it never reaches a log

_CLIENT_LOG = logging.getLogger("tests.kafka_peer")

_LOG4J = """\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
"""


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    sasl_port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None


def _cluster_id() -> str:
    """A random cluster id as `kafka-storage random-uuid` makes one: never starting with "-",
    which the tool's argument parser would read as an option (1 run in 64 failed on it)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class KafkaCluster:
    def __init__(
        self, base: Path, brokers: int = 1, heap: str = "512m", secure: bool = False, auto_create: bool = True
    ) -> None:
        if not JARS.is_dir():
            raise RuntimeError("Kafka jars are missing: run `make peers`")
        self.base = base
        self.heap = heap
        self.nodes = [Node(i + 1, free_port(), free_port()) for i in range(brokers)]
        self.ca: trustme.CA | None = None
        if secure:
            self.nodes[0].sasl_port = free_port()
            self.nodes[0].tls_port = free_port()
            self.ca = trustme.CA()
        self.replication = min(3, brokers)
        self.auto_create = auto_create

    # -- addresses ----------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.nodes[0].sasl_port}"

    @property
    def tls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.nodes[0].tls_port}"

    def client_files(self) -> tuple[str, str, str]:
        """(CA, client certificate, client key) PEM paths for the TLS listener."""
        assert self.ca is not None
        directory = self.base / "client-tls"
        directory.mkdir(parents=True, exist_ok=True)
        ca, cert, key = directory / "ca.pem", directory / "client.pem", directory / "client.key"
        if not key.exists():
            leaf = self.ca.issue_cert("logdriver-client")
            self.ca.cert_pem.write_to_path(str(ca))
            leaf.cert_chain_pems[0].write_to_path(str(cert))
            leaf.private_key_pem.write_to_path(str(key))
        return str(ca), str(cert), str(key)

    # -- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 90) -> KafkaCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "log4j2.properties").write_text(_LOG4J)
        cluster_id = _cluster_id()
        for node in self.nodes:
            self._configure(node)
            scram = []
            if node.sasl_port:
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    scram += ["--add-scram", f"{mechanism}=[name={SASL_USER},password={SASL_PASSWORD}]"]
            formatted = subprocess.run(
                [*self._java("256m"), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                 str(self._dir(node) / "server.properties"), *scram],
                capture_output=True, timeout=120,
            )  # fmt: skip
            if formatted.returncode != 0:
                output = (formatted.stdout + formatted.stderr).decode(errors="replace")
                raise RuntimeError(f"kafka-storage format failed ({formatted.returncode}):\n{output[-3000:]}")
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout)
        return self

    def start_node(self, node: Node) -> None:
        directory = self._dir(node)
        with open(directory / "broker.log", "ab") as log:
            node.process = subprocess.Popen(
                [*self._java(self.heap), "kafka.Kafka", str(directory / "server.properties")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )

    def stop_node(self, node: Node, kill: bool = False) -> None:
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def stop(self) -> None:
        """Every node at once: a broker whose peers are gone would wait for them to shut down."""
        running = [node.process for node in self.nodes if node.process and node.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 20
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every running broker is in the cluster metadata and a topic can be made."""
        deadline = time.monotonic() + timeout
        running = sum(1 for node in self.nodes if node.process and node.process.poll() is None)
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process and node.process.poll() is not None and running == len(self.nodes):
                    raise RuntimeError(f"Kafka broker {node.node_id} exited:\n{self.log(node)[-3000:]}")
            try:
                metadata = self.admin().list_topics(timeout=2)
                if len(metadata.brokers) >= running:
                    return
            except confluent_kafka.KafkaException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Kafka did not start within {timeout:.0f}s:\n{self.log(self.nodes[0])[-3000:]}")

    def log(self, node: Node) -> str:
        path = self._dir(node) / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "".join(self.log(node) for node in self.nodes)

    # -- topics and reading back ----------------------------------------------------

    def admin(self) -> AdminClient:
        # librdkafka's connection-refused lines while brokers start go to logging, not stderr.
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000, "logger": _CLIENT_LOG}
        return AdminClient(config)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        admin = self.admin()  # kept alive until the result: a dropped client cancels its requests
        futures = admin.create_topics([NewTopic(name, partitions, self.replication)], operation_timeout=30)
        futures[name].result(60)

    def leader(self, topic: str, partition: int = 0) -> Node:
        metadata = self.admin().list_topics(topic, timeout=10)
        leader = metadata.topics[topic].partitions[partition].leader
        return next(node for node in self.nodes if node.node_id == leader)

    def consume(
        self, topics: Sequence[str], count: int, timeout: float = 60, idle: float = 0.0
    ) -> list[confluent_kafka.Message]:
        """Every partition of ``topics`` from its first offset, until ``count`` messages arrived
        (then ``idle`` more seconds, to catch extras) or ``timeout``. Assigned, not subscribed:
        no consumer group, so reading back does not wait for a group coordinator."""
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "unused",
                "enable.auto.commit": False,
                "logger": _CLIENT_LOG,
            }
        )
        out: list[confluent_kafka.Message] = []
        try:
            metadata = consumer.list_topics(timeout=30)
            consumer.assign(
                [
                    confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING)
                    for topic in topics
                    for partition in metadata.topics[topic].partitions
                ]
            )
            deadline = time.monotonic() + timeout
            settle: float | None = None
            while time.monotonic() < deadline:
                for message in consumer.consume(10_000, 0.5):
                    if message.error() is None:
                        out.append(message)
                if len(out) >= count:
                    settle = settle or time.monotonic() + idle
                    if time.monotonic() >= settle:
                        break
        finally:
            consumer.close()
        return out

    # -- configuration ----------------------------------------------------------------

    def _dir(self, node: Node) -> Path:
        return self.base / f"broker-{node.node_id}"

    def _java(self, heap: str) -> list[str]:
        java = shutil.which("java") or "java"
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
            "-cp",
            f"{JARS}/*",
        ]

    def _configure(self, node: Node) -> None:
        directory = self._dir(node)
        directory.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        listeners = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        extra: list[str] = []
        if node.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
            scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
            users = f'user_{SASL_USER}="{SASL_PASSWORD}"'
            extra += [
                "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain} required {users};",
                f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram} required;",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram} required;",
            ]
        if node.tls_port:
            assert self.ca is not None
            listeners.append(f"SSL://127.0.0.1:{node.tls_port}")
            protocols.append("SSL:SSL")
            server = self.ca.issue_cert("127.0.0.1", "localhost")
            key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
            pkcs8 = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            keystore, truststore = directory / "server-keystore.pem", directory / "server-truststore.pem"
            keystore.write_bytes(pkcs8 + b"".join(pem.bytes() for pem in server.cert_chain_pems))
            truststore.write_bytes(self.ca.cert_pem.bytes())
            os.chmod(keystore, 0o600)
            extra += [
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={keystore}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={truststore}",
                "ssl.client.auth=required",
            ]
        replication = self.replication
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={','.join([*listeners, f'CONTROLLER://127.0.0.1:{node.controller_port}'])}",
            f"advertised.listeners={','.join(listeners)}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map={','.join(protocols)}",
            f"log.dirs={directory / 'data'}",
            f"offsets.topic.replication.factor={replication}",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min(2, replication)}",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min(2, replication)}",
            "num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            f"auto.create.topics.enable={'true' if self.auto_create else 'false'}",
            # Kept whatever their timestamps: test lines carry 2025 times, which the default
            # 7-day retention would delete (and roll segments for) as soon as they arrive.
            "log.retention.ms=-1",
            *extra,
        ]
        (directory / "server.properties").write_text("\n".join(lines) + "\n")

"""The Elasticsearch sink on the real engine, into a real OpenSearch node: every line the
container wrote is one document, with the container's facts, and nothing twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..es_peer import SearchNode
from ..traces import PRINTING_SCRIPT, expected_messages, mount_trace, trace
from .bursts import BURST, burst
from .conftest import Plugin, docker, logs

SCRIPT = (
    "seq 1 20000; echo ''; printf 'tab\\there \"quoted\" ünïcode\\n'; "
    'for i in 1 2 3; do echo "err $i" >&2; done; '
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchNode]:
    opensearch = SearchNode(tmp_path_factory.mktemp("opensearch")).start()
    yield opensearch
    opensearch.stop()


def test_every_line_the_container_wrote_is_one_document(plugin: Plugin, node: SearchNode) -> None:
    stream = "logs-docker.e2e-default"
    container = plugin.run(
        "sh",
        "-c",
        SCRIPT,
        opts={
            "sinks": "elasticsearch",
            "es-url": node.url,
            "es-data-stream": stream,
            "es-install-template": "true",
            "elasticsearch-flush-timeout": "120s",  # a cold node on a busy CI host is slow
            "labels": "tier",
            "tag": "{{.ImageName}}",
        },
        args=("--label", "tier=web"),
    )
    delivered, dropped = plugin.closing_counts(container, "elasticsearch")
    stdout, stderr = logs(container)  # what the container wrote, from logdriver's own store
    stdout_lines = stdout.decode().split("\n")
    assert stdout_lines[-2:] == ["x" * 40000, "no newline at the end"]
    expected = Counter(stdout_lines + stderr.decode().splitlines())
    documents = node.documents(stream)
    assert (delivered, dropped) == (len(documents), 0)
    assert Counter(str(d["message"]) for d in documents) == expected
    assert len({d["_id"] for d in documents}) == len(documents)
    name = docker("inspect", "-f", "{{.Name}}", container).stdout.decode().strip().removeprefix("/")
    first = next(d for d in documents if d["message"] == "1")
    assert first["container"] == {
        "id": container,
        "name": name,
        "image": {"name": "logdriver-test"},
        "labels": {"tier": "web"},
        "runtime": "docker",
    }
    assert first["tags"] == ["logdriver-test"]
    assert first["stream"] == "stdout"
    assert next(d for d in documents if d["message"] == "err 2")["stream"] == "stderr"
    assert str(first["@timestamp"]).endswith("Z")


def test_a_trace_is_one_document_and_a_json_line_gets_ecs_fields(
    plugin: Plugin, node: SearchNode, tmp_path: Path
) -> None:
    lines = trace("java")
    stream = "logs-docker.events-default"
    opts = {
        "sinks": "elasticsearch",
        "es-url": node.url,
        "es-data-stream": stream,
        "es-install-template": "true",
        "elasticsearch-flush-timeout": "120s",
        "multiline": "java",
        "multiline-timeout": "10s",
        "parse": "json",
    }
    container = plugin.run("sh", "-c", PRINTING_SCRIPT, opts=opts, args=mount_trace(lines, tmp_path))
    delivered, dropped = plugin.closing_counts(container, "elasticsearch")
    documents = sorted(node.documents(stream), key=lambda d: str(d["@timestamp"]))
    assert (delivered, dropped) == (len(documents), 0)
    for source in ("stdout", "stderr"):
        assert [d["message"] for d in documents if d["stream"] == source] == expected_messages(lines, source)
    events = [d for d in documents if "\n" in str(d["message"])]
    assert [d["multiline"] for d in events] == [{"lines": len(lines)}] * 2
    parsed = next(d for d in documents if d["message"] == "parsed")
    assert (parsed["log.level"], parsed["trace.id"], parsed["fields"]) == ("warn", "abc", {"user_id": "7"})


def test_a_burst_with_default_options_reaches_the_node_whole(plugin: Plugin, node: SearchNode) -> None:
    burst(plugin, {"sinks": "elasticsearch", "es-url": node.url, "es-index": "e2e-burst"})
    assert node.count("e2e-burst") == BURST  # every line once (ids are the lines' own)

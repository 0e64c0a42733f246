"""The OTLP sink on the real engines, into a real OpenTelemetry Collector: every line once,
with the container's resource attributes; a Collector outage loses nothing."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..otel_peer import CollectorPeer
from .bursts import BURST, EXPECTED, burst
from .conftest import Plugin, docker, logs

SCRIPT = (
    "seq 1 5000; echo ''; printf 'tab\\there \"quoted\" ünïcode\\n'; "
    'for i in 1 2 3; do echo "err $i" >&2; done; '
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorPeer]:
    with CollectorPeer(tmp_path / "otelcol") as peer:
        yield peer


def test_every_line_is_one_record_with_the_containers_resource(plugin: Plugin, collector: CollectorPeer) -> None:
    opts = {"sinks": "otlp", "otlp-endpoint": collector.endpoint, "labels": "tier"}
    args = (
        "--label",
        "tier=web",
        "--label",
        "com.docker.compose.service=api",
        "--label",
        "com.docker.compose.project=shop",
    )
    container = plugin.run("sh", "-c", SCRIPT, opts=opts, args=args)
    delivered, dropped = plugin.closing_counts(container, "otlp")
    stdout, stderr = logs(container)
    expected = Counter(stdout.decode().split("\n") + stderr.decode().splitlines())
    records = collector.wait_for(sum(expected.values()))
    assert (delivered, dropped) == (len(records), 0)
    assert Counter(r["text"] for r in records) == expected
    name = docker("inspect", "-f", "{{.Name}}", container).stdout.decode().strip().removeprefix("/")
    resource = records[0]["resource"]
    assert resource["container.id"] == container
    assert resource["container.name"] == name
    assert resource["container.image.name"] == "logdriver-test"
    assert (resource["service.name"], resource["service.namespace"]) == ("api", "shop")
    assert resource["container.label.tier"] == "web"
    assert {r["attrs"]["log.iostream"] for r in records} == {"stdout", "stderr"}
    assert all(abs(int(r["observedTimeUnixNano"]) / 1e9 - time.time()) < 600 for r in records)


def test_a_collector_outage_loses_nothing(plugin: Plugin, collector: CollectorPeer) -> None:
    collector.stop()
    opts = {"sinks": "otlp", "otlp-endpoint": collector.endpoint, "otlp-retry-max-time": "0s"}
    container = plugin.run("sh", "-c", "seq 1 3000", opts={k: v for k, v in opts.items() if "retry" not in k})
    time.sleep(2)  # the exports fail meanwhile, and are retried
    collector.start()
    delivered, dropped = plugin.closing_counts(container, "otlp", timeout=120)
    records = collector.wait_for(3000)
    assert (delivered, dropped) == (3000, 0)
    assert sorted(int(r["text"]) for r in records) == list(range(1, 3001))


def test_a_burst_with_default_options_reaches_the_collector_whole_and_in_order(
    plugin: Plugin, collector: CollectorPeer
) -> None:
    burst(plugin, {"sinks": "otlp", "otlp-endpoint": collector.endpoint})
    assert [r["text"] for r in collector.wait_for(BURST, timeout=60)] == EXPECTED

"""The Fluentd sink on the real engine, against the real FluentServer, compared
with Docker's built-in ``fluentd`` driver sending to the same server."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..fluent_peer import FluentPeer
from ..ports import free_port
from ..traces import JSON_LINE, PRINTING_SCRIPT, expected_messages, mount_trace, trace
from .bursts import BURST, EXPECTED, burst
from .conftest import Plugin, docker

SCRIPT = (
    'for i in $(seq 1 300); do echo "line $i"; echo "err $i" >&2; done; '
    "echo ''; printf 'tab\\there \"quoted\" ünïcode\\n'; "
    "head -c 40000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'"
)


def rejoin(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's driver sends a long line as 16 KiB pieces with partial_* fields; join them
    (logdriver sends the line whole) so the two streams compare line for line. A line
    the container never ended has no last piece: both drivers send it as it came."""
    out: list[dict[str, Any]] = []
    pieces: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("partial_message") != "true":
            out.append(record)
            continue
        pieces.setdefault(record["partial_id"], []).append(record)
        if record["partial_last"] == "true":
            parts = pieces.pop(record["partial_id"])
            whole = {k: v for k, v in record.items() if not k.startswith("partial_")}
            out.append(whole | {"log": "".join(p["log"] for p in parts)})
    return out + [piece for parts in pieces.values() for piece in parts]


def by_container(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[event["record"]["container_id"]].append(event)
    return grouped


def test_records_match_dockers_own_fluentd_driver(plugin: Plugin, tmp_path: Path) -> None:
    with FluentPeer(tmp_path) as peer:
        common = {
            "fluentd-address": f"127.0.0.1:{peer.port}",
            "tag": "docker.{{.ImageName}}",
            "labels": "app",
            "env": "MODE",
            "fluentd-sub-second-precision": "true",
        }
        args = ("--label", "app=web", "-e", "MODE=prod")
        ours = plugin.run("sh", "-c", SCRIPT, opts={"sinks": "fluentd", **common}, args=args)
        theirs = plugin.run("sh", "-c", SCRIPT, opts=common, args=args, driver="fluentd")
        # 600 short lines, one empty, one with tabs, one long, one unterminated: 604 lines,
        # which Docker's driver sends as 606 records (the long line in three pieces).
        grouped = by_container(peer.wait_for(604 + 606, timeout=30))
        time.sleep(1)  # anything extra (a duplicate) would have arrived by now
        grouped = by_container(peer.events())
    ours_events, theirs_events = grouped[ours], grouped[theirs]
    assert len(ours_events) == 604
    assert len(theirs_events) == 606
    assert {e["tag"] for e in ours_events} == {e["tag"] for e in theirs_events} == {"docker.logdriver-test"}
    for event in ours_events + theirs_events:
        seconds, nanos = event["time"]  # EventTime on both sides
        assert abs(seconds - time.time()) < 600
        assert 0 <= nanos < 10**9
    our_name = docker("inspect", "-f", "{{.Name}}", ours).stdout.decode().strip()
    varying = ("container_id", "container_name", "partial_id")  # per container / per run
    for source in ("stdout", "stderr"):
        mine = [e["record"] for e in ours_events if e["record"]["source"] == source]
        docker_s = rejoin([e["record"] for e in theirs_events if e["record"]["source"] == source])
        assert len(mine) == len(docker_s)
        for a, b in zip(mine, docker_s, strict=True):
            assert a.keys() == b.keys()
            assert a["container_name"] == our_name
            assert b["container_name"].startswith("/")
            assert {k: v for k, v in a.items() if k not in varying} == {k: v for k, v in b.items() if k not in varying}
    stdout = [e["record"]["log"] for e in ours_events if e["record"]["source"] == "stdout"]
    assert "x" * 40000 in stdout  # one record, where Docker's driver sent three pieces
    assert stdout[-1] == "no newline at the end"
    assert stdout[-4:-2] == ["", 'tab\there "quoted" ünïcode']


def test_server_down_never_holds_the_container_and_every_drop_is_counted(plugin: Plugin, tmp_path: Path) -> None:
    lines = 300_000
    port = free_port()  # nothing listens there yet
    container = plugin.create(
        "seq",
        "1",
        str(lines),
        opts={
            "sinks": "fluentd,file",
            "fluentd-address": f"tcp://127.0.0.1:{port}",
            "buffer": "memory",  # the default would spill what does not fit, and drop nothing
            "fluentd-buffer-limit": "50000",  # Docker's option name: lines buffered
            "fluentd-retry-max-delay": "300ms",
            "flush-timeout": "20s",
            "file-format": "text",
        },
    )
    docker("start", container)
    assert docker("wait", container, timeout=120).stdout.strip() == b"0"  # not held by the dead server
    with FluentPeer(tmp_path, port=port) as peer:
        delivered, dropped = plugin.closing_counts(container, "fluentd")
        events = peer.wait_for(delivered, timeout=20)
    assert dropped > 0  # the server was down: the queue filled and shed lines, counted
    assert delivered + dropped == lines
    assert len(events) == delivered
    assert [e["record"]["log"] for e in events] == sorted(
        (e["record"]["log"] for e in events), key=int
    )  # what was kept arrives in order
    text = next(plugin.file_dir.glob(f"{container[:12]}-*.log")).read_bytes()
    assert text.count(b"\n") == lines  # the file sink lost nothing meanwhile


def metric_value(address: str, name: str, **labels: str) -> float:
    """One sample of ``name`` with exactly these labels, in any order (0 when absent)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            found = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if pair)
            if metric == name and found == {k: f'"{v}"' for k, v in labels.items()}:
                return float(value)
    return 0.0


def test_containers_on_one_server_share_its_connection_and_requests(make_plugin: Any, tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    plugin: Plugin = make_plugin(LOGDRIVER_METRICS_ADDRESS=metrics)
    count, lines = 6, 200
    with FluentPeer(tmp_path) as peer:
        opts = {"sinks": "fluentd", "fluentd-address": f"127.0.0.1:{peer.port}", "batch-max-wait": "3s"}
        script = f"for i in $(seq 1 {lines}); do echo line $i; done"
        containers = [plugin.create("sh", "-c", script, opts=opts) for _ in range(count)]
        for container in containers:
            docker("start", container)
        for container in containers:
            assert docker("wait", container, timeout=60).stdout.strip() == b"0"
        events = peer.wait_for(count * lines, timeout=30)
        time.sleep(0.5)  # a duplicate would have arrived by now
        events = peer.events()
    grouped = by_container(events)
    assert sorted(grouped) == sorted(containers)
    for container in containers:  # every container's lines, once each, in order
        assert [e["record"]["log"] for e in grouped[container]] == [f"line {i}" for i in range(1, lines + 1)]
    # One connection for all six, and fewer requests than containers: they shared them.
    assert metric_value(metrics, "logdriver_sink_events_total", sink="fluentd", event="connects") == 1
    requests = metric_value(metrics, "logdriver_sink_requests_total", sink="fluentd")
    assert 1 <= requests < count
    assert metric_value(metrics, "logdriver_sink_request_lines_total", sink="fluentd") == count * lines


def test_a_trace_is_one_record_and_a_json_line_has_fields(plugin: Plugin, tmp_path: Path) -> None:
    lines = trace("java")
    expected = {source: expected_messages(lines, source) for source in ("stdout", "stderr")}
    with FluentPeer(tmp_path) as peer:
        opts = {"sinks": "fluentd", "fluentd-address": f"127.0.0.1:{peer.port}", "multiline": "java", "parse": "json"}
        container = plugin.run(
            "sh",
            "-c",
            PRINTING_SCRIPT,
            opts=opts | {"multiline-timeout": "10s"},
            args=mount_trace(lines, tmp_path / "t"),
        )
        events = peer.wait_for(sum(map(len, expected.values())), timeout=30)
        time.sleep(1)  # anything extra would have arrived by now
        records = [e["record"] for e in by_container(peer.events())[container]]
    for source, wanted in expected.items():
        assert [r["log"] for r in records if r["source"] == source] == wanted
    assert [r["multiline_lines"] for r in records if "multiline_lines" in r] == [len(lines)] * 2
    parsed = next(r for r in records if r["log"] == "parsed")
    assert (parsed["level"], parsed["trace_id"], parsed["fields"]) == ("warn", "abc", {"user": JSON_LINE["user"]})
    assert len(events) >= len(records)


def test_a_burst_with_default_options_reaches_the_server_whole_and_in_order(plugin: Plugin, tmp_path: Path) -> None:
    with FluentPeer(tmp_path) as peer:
        container = burst(plugin, {"sinks": "fluentd", "fluentd-address": f"127.0.0.1:{peer.port}"})
        events = by_container(peer.wait_for(BURST, timeout=60))[container]
    assert [e["record"]["log"] for e in events] == EXPECTED

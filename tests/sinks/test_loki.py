"""The Loki sink against real VictoriaLogs (tests/loki_peer.py), which takes Loki's push
API, and a fake HTTP endpoint (named a fake) for the lying servers VictoriaLogs never is.

Lines, labels and structured metadata as VictoriaLogs reads them back, in both push
formats; containers sharing one push; Loki's verdicts (429/5xx retried after Retry-After,
400/413 dead-lettered with Loki's reason, a redirect refused); the tenant and
credentials headers; the Loki driver's options (a URL with credentials refused with how
to set them, relabel rules). The shared contract is in test_conformance.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logdriver import ConfigError, LogRecord, PartialInfo, batch_of
from logdriver.testing import (
    close_clients,
    context_for,
    open_pipeline,
    open_stream,
    running,
    running_together,
    sample_records,
)
from logdriver_sinks.loki import LokiSink, LokiStream
from logdriver_sinks.loki._push import LabelSet, judge
from logdriver_sinks.loki._relabel import parse_relabel_config, relabel
from logdriver_sinks.loki._stages import expand

from ..fakes import FakeHttpEndpoint
from ..loki_peer import VictoriaLogsPeer

T0 = 1_764_340_000_123_456_789
INFO = {
    "ContainerID": "ab12" * 16,
    "ContainerName": "/web-1",
    "ContainerLabels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web", "team": "core"},
    "LogPath": "/var/lib/docker/containers/ab12/ab12-json.log",
}


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaLogsPeer]:
    peer = VictoriaLogsPeer(tmp_path_factory.mktemp("victorialogs")).start()
    yield peer
    peer.stop()


@pytest.fixture
async def sink() -> Any:
    sink = LokiSink()
    yield sink
    await close_clients(sink)


@pytest.mark.parametrize("push_format", ["protobuf", "json"])
async def test_lines_labels_and_metadata_as_victorialogs_reads_them(
    victoria: VictoriaLogsPeer, sink: LokiSink, tmp_path: Path, push_format: str
) -> None:
    job = f"t-{uuid.uuid4().hex[:8]}"
    config = {
        "loki-url": victoria.push_url,
        "loki-format": push_format,
        "loki-external-labels": f"job={job},container_name={{{{.Name}}}}",
        "labels": "team",
        "batch-max-wait": "0s",
    }
    records = [
        LogRecord("stdout", T0, b"first line"),
        LogRecord("stderr", T0 + 1000, b'second "quoted" \\ line'),
        LogRecord("stdout", T0 + 2000, b"cut here", PartialInfo("p-1", 1, False)),
    ]
    pipeline = open_pipeline(sink, config, state_dir=tmp_path, info=INFO)
    async with running(pipeline):
        await pipeline.put(batch_of(records))
    assert pipeline.counters.lines_out == 3
    query = f'_stream:{{job="{job}"}}'
    assert victoria.wait_for(3, query) == 3
    rows = victoria.query(f"{query} | sort by (_time)")
    assert [row["_msg"] for row in rows] == ["first line", 'second "quoted" \\ line', "cut here"]
    first = rows[0]
    assert first["_time"].startswith("2025-11-28T14:26:40.123456789")
    # The Loki driver's labels: the stream's own.
    for label, value in [
        ("host", first["host"]),
        ("filename", INFO["LogPath"]),
        ("container_name", "web-1"),
        ("compose_project", "shop"),
        ("compose_service", "web"),
        ("team", "core"),
    ]:
        assert f'{label}="{value}"' in first["_stream"], label
    # Per-line facts: structured metadata, not labels.
    assert first["container_id"] == INFO["ContainerID"]
    assert [row["stream"] for row in rows] == ["stdout", "stderr", "stdout"]
    assert (rows[2]["partial_id"], rows[2]["partial_last"]) == ("p-1", "false")
    assert "container_id" not in first["_stream"]


async def test_fifty_containers_share_one_push(tmp_path: Path) -> None:
    endpoint = FakeHttpEndpoint([(204, {}, b"", 0.0)])
    sink = LokiSink()
    try:
        config = {"loki-url": endpoint.url + "/loki/api/v1/push", "loki-format": "json", "batch-max-wait": "200ms"}
        pipelines = [
            open_pipeline(sink, config, state_dir=tmp_path / str(n), info={**INFO, "ContainerID": f"{n:064x}"})
            for n in range(50)
        ]
        async with running_together(sink, pipelines):
            for pipeline in pipelines:
                await pipeline.put(batch_of(sample_records(20)))
        assert sum(p.counters.lines_out for p in pipelines) == 1000
        pushes = [json.loads(body) for body in endpoint.bodies]
        assert len(pushes) <= 3  # 50 streams in one push, or a few
        assert sum(len(push["streams"]) for push in pushes) == 50
        assert endpoint.paths[0] == "/loki/api/v1/push"
    finally:
        await close_clients(sink)
        endpoint.close()


OK = (204, {}, b"", 0.0)


@pytest.mark.parametrize(
    ("answers", "delivered", "dead", "reason"),
    [
        ([(400, {}, b"entry for stream '{job=\"a\"}' has timestamp too old", 0.0)], 0, 5, "timestamp too old"),
        ([(413, {}, b"request body too large", 0.0)], 0, 5, "HTTP 413"),
        ([(302, {"location": "http://elsewhere.example/push"}, b"", 0.0)], 0, 5, "set loki-url there"),
        ([(429, {"retry-after": "1"}, b"rate limited", 0.0), OK], 5, 0, None),
        ([(503, {}, b"", 0.0), OK], 5, 0, None),
        ([(204, {}, b"", 3.0), OK], 5, 0, None),  # slower than loki-timeout: retried
        ([(204, {}, b"", -0.3), OK], 5, 0, None),  # each byte in time, the whole reply never
    ],
    ids=["400", "413", "redirect", "429-retry-after", "503", "slow", "dripping"],
)
async def test_lying_and_broken_servers_get_a_counted_decision(
    tmp_path: Path, answers: list[Any], delivered: int, dead: int, reason: str | None
) -> None:
    endpoint = FakeHttpEndpoint(answers)
    sink = LokiSink()
    try:
        config = {"loki-url": endpoint.url + "/loki/api/v1/push", "loki-timeout": "1s", "loki-min-backoff": "100ms"}
        pipeline = open_pipeline(sink, config, state_dir=tmp_path)
        async with running(pipeline, flush_timeout=30):
            await pipeline.put(batch_of(sample_records(5)))
        stats = pipeline.counters
        assert (stats.lines_out, stats.dead_lettered, stats.dropped) == (delivered, dead, 0)
        if reason is not None:
            letters = next((tmp_path / "deadletter" / "loki").glob("*.jsonl")).read_text()
            assert reason in letters
    finally:
        await close_clients(sink)
        endpoint.close()


async def test_tenant_and_credentials_headers_go_only_where_the_operator_put_them(tmp_path: Path) -> None:
    endpoint = FakeHttpEndpoint([OK])
    other = FakeHttpEndpoint([OK])
    sink = LokiSink()
    environ = {
        "LOGDRIVER_LOKI_URL": endpoint.url + "/loki/api/v1/push",
        "LOGDRIVER_LOKI_USERNAME": "shipper",
        "LOGDRIVER_LOKI_PASSWORD": "s3cret",
        "LOGDRIVER_LOKI_TENANT_ID": "ops",
    }
    try:
        for state, config in (("a", {}), ("b", {"loki-url": other.url + "/loki/api/v1/push"})):
            pipeline = open_pipeline(sink, config, state_dir=tmp_path / state, environ=environ)
            async with running(pipeline):
                await pipeline.put(batch_of(sample_records(2)))
        ours, theirs = endpoint.headers[0], other.headers[0]
        assert ours["x-scope-orgid"] == "ops"
        assert ours["authorization"].startswith("Basic ")
        assert ours["content-type"] == "application/x-protobuf"
        assert "authorization" not in theirs  # a container's own URL gets no operator credentials
        assert "x-scope-orgid" not in theirs
    finally:
        await close_clients(sink)
        endpoint.close()
        other.close()


def test_a_url_with_credentials_fails_saying_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as refused:
        context_for(LokiSink(), {"loki-url": "https://user:hunter2@logs.example/loki/api/v1/push"})
    message = str(refused.value)
    assert "hunter2" not in message
    assert "LOGDRIVER_LOKI_PASSWORD" in message
    assert "loki-url" in message


def test_the_loki_drivers_options_are_accepted() -> None:
    sink = LokiSink()
    context = context_for(
        sink,
        {
            "loki-url": "http://loki:3100/loki/api/v1/push",
            "loki-batch-wait": "2s",
            "loki-batch-size": "400000",
            "loki-min-backoff": "1s",
            "loki-max-backoff": "1m",
            "loki-retries": "5",
            "loki-timeout": "5s",
            "loki-tenant-id": "team-a",
            "loki-external-labels": "job=docker,container_name={{.Name}}",
            "loki-proxy-url": "http://proxy:3128",
            "loki-tls-insecure-skip-verify": "false",
        },
    )
    pipeline = context.options.pipelines["loki"]
    assert (pipeline.batch_max_wait, pipeline.batch_max_bytes) == (2.0, 400_000)
    assert (pipeline.retry_initial, pipeline.retry_max_delay, pipeline.retry_max_attempts) == (1.0, 60.0, 5)
    with pytest.raises(ConfigError, match="loki-external-labels"):
        context_for(sink, {"loki-url": "http://loki:3100/push", "loki-external-labels": "bad-name=x"})


def test_relabel_rules_run_once_over_the_container_labels() -> None:
    rules = parse_relabel_config(
        """
- source_labels: [compose_service]
  regex: "(w.*)"
  target_label: service
  replacement: "svc-$1"
- action: labeldrop
  regex: filename
- action: labelmap
  regex: "team"
  replacement: owner
"""
    )
    labels = relabel(rules, {"compose_service": "web", "filename": "/x", "team": "core"})
    assert labels == {"compose_service": "web", "service": "svc-web", "team": "core", "owner": "core"}
    assert relabel(parse_relabel_config("- action: drop\n  source_labels: [team]\n  regex: core"), labels) is None
    for bad in (
        "- action: hashmod",
        "- regex: '('",
        "not: a list",
        "- target_label: x\n  action: replace\n  regex: a[",
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each says what, checked in the sink's ConfigError
            parse_relabel_config(bad)


def test_relabel_replacements_expand_as_gos_regexp_expand() -> None:
    """A group the regex lacks is empty (Prometheus's behaviour), not an error at start."""
    rules = parse_relabel_config(
        """
- source_labels: [compose_service]
  regex: "(?P<kind>w)(.*)"
  target_label: service
  replacement: "$$-${kind}-$2-$7-${nope}$$"
"""
    )
    assert relabel(rules, {"compose_service": "web"}) == {"compose_service": "web", "service": "$-w-eb--$"}


def test_a_stream_relabel_drops_pushes_nothing_and_counts(tmp_path: Path) -> None:
    sink = LokiSink()
    config = {
        "loki-url": "http://127.0.0.1:1/loki/api/v1/push",
        "loki-relabel-config": "- action: keep\n  source_labels: [compose_project]\n  regex: billing",
    }
    stream = open_stream(sink, config, info=INFO)
    assert isinstance(stream, LokiStream)
    assert stream.dropped


def test_label_values_are_escaped_and_sorted() -> None:
    labels = LabelSet.of({"b": 'say "hi"\n', "a": "back\\slash", "empty": ""})
    assert labels.text() == '{a="back\\\\slash", b="say \\"hi\\"\\n"}'


def test_verdicts() -> None:
    assert judge(204, b"", {}).retry is False
    assert judge(429, b"", {"retry-after": "3"}).retry_after == 3.0
    assert judge(500, b"", {}).retry
    assert judge(400, b"x" * 5000, {}).rejected
    assert len(judge(400, b"x" * 5000, {}).reason) <= 520


STAGES = """
- multiline:
    firstline: '^\\d{4}-\\d{2}-\\d{2}'
    max_wait_time: 3s
    max_lines: 128
- json:
    expressions: {level: level, msg: msg}
- labels: {level: ""}
- timestamp: {source: time, format: RFC3339Nano}
- output: {source: msg}
- drop: {expression: "healthcheck"}
- match: {selector: '{} |= "debug"', action: drop}
- replace: {expression: "password=(\\\\S+)", replace: "***"}
- limit: {rate: 100, burst: 200, drop: true}
- static_labels: {env: prod}
"""


def test_the_pipeline_stages_users_pass_run_on_logdrivers_steps() -> None:
    config = expand({"loki-url": "http://loki/push", "loki-pipeline-stages": STAGES})
    assert config["multiline-start"] == r"^\d{4}-\d{2}-\d{2}"
    assert (config["multiline-timeout"], config["multiline-max-lines"]) == ("3s", "128")
    assert config["parse"] == "json"
    assert config["loki-line"] == "message"
    assert config["drop-lines"] == "(?:healthcheck)|(?:debug)"
    assert config["redact-pattern"] == r"password=(\S+)"
    assert (config["rate-limit"], config["rate-limit-burst"]) == ("100/s", "200")
    assert config["loki-external-labels"] == "container_name={{.Name}},env=prod"
    # And they pass the plugin's own validation, as a docker run would.
    context = context_for(LokiSink(), {"loki-pipeline-stages": STAGES, "loki-url": "http://loki/push"})
    processing = context.options.processing
    assert processing is not None
    assert processing.parse_json


@pytest.mark.parametrize(
    ("stages", "named"),
    [
        ("- regex: {expression: '(?P<x>.*)'}", "regex"),
        ("- drop: {source: level, value: debug}", "drop"),
        ("- match: {selector: '{app=\"x\"}', stages: []}", "match"),
        ("- labels: {level: ''}", "labels"),  # without json first
        ("- timestamp: {source: when, format: RFC3339}", "timestamp"),
        ("- tenant: {value: a}", "tenant"),
        ("not yaml: [", "<yaml>"),
    ],
)
def test_a_stage_without_a_step_fails_docker_run_naming_it(stages: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        context_for(LokiSink(), {"loki-url": "http://loki/push", "loki-pipeline-stages": stages})
    assert named in str(refused.value)
    assert "loki-pipeline-stages" in str(refused.value)


def test_a_stage_file_is_read_within_bounds_and_never_quoted(tmp_path: Path) -> None:
    stages = tmp_path / "stages.yaml"
    stages.write_text("- json: {}\n")
    assert expand({"loki-pipeline-stage-file": str(stages)})["parse"] == "json"
    secret = tmp_path / "secret"
    secret.write_text("root:$6$hash-that-must-not-leak: [\n")
    with pytest.raises(ConfigError) as refused:
        expand({"loki-pipeline-stage-file": str(secret)})
    assert "hash-that-must-not-leak" not in str(refused.value)
    big = tmp_path / "big.yaml"
    big.write_text("#" * (70 << 10))
    for path in (big, tmp_path):  # too big; a directory
        with pytest.raises(ConfigError, match="loki-pipeline-stage-file"):
            expand({"loki-pipeline-stage-file": str(path)})
    with pytest.raises(ConfigError, match="drop-lines"):  # a stage and the container's own option
        expand({"loki-pipeline-stages": "- drop: {expression: x}", "drop-lines": "y"})


def test_the_tls_group_under_the_loki_drivers_names(tmp_path: Path) -> None:
    sink = LokiSink()
    https = {"loki-url": "https://loki.example/loki/api/v1/push"}
    skip = sink.destination(context_for(sink, https | {"loki-tls-insecure-skip-verify": "true"}))
    assert skip.tls.verify is False
    assert sink.destination(context_for(sink, https)).tls.verify is True
    named = sink.destination(context_for(sink, https | {"loki-tls-server-name": "loki.internal"}))
    assert named.tls.server_name == "loki.internal"
    with pytest.raises(ConfigError, match="loki-tls-ca-file"):  # a bad file is named by its own option
        sink.destination(context_for(sink, https | {"loki-tls-ca-file": str(tmp_path / "missing.pem")}))

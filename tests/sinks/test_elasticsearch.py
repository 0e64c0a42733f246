"""The Elasticsearch sink: against a real OpenSearch node, and against FakeBulkServer
(a fake) for what a real node will not do on demand (429 items, 413, slow answers)."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from logdriver import ConfigError, LogDriverError, LogRecord, PartialInfo, batch_of
from logdriver.abc import DELIVERED
from logdriver.testing import (
    close_clients,
    close_stream,
    context_for,
    open_clients,
    open_pipeline,
    open_stream,
    running,
    running_together,
)
from logdriver_sinks.elasticsearch import ElasticsearchSink, ElasticsearchStream
from logdriver_sinks.elasticsearch._bulk import BulkEncoder, Target

from ..es_peer import SERVERS, SearchNode
from ..fake_bulk import FakeBulkServer
from ..logcheck import plugin_log
from . import es_reference

CONTAINER_ID = "cd34" * 16
T0 = 1_764_340_000_123_456_789  # 2025-11-28


def stream_for(
    config: dict[str, str], sink: ElasticsearchSink | None = None, environ: dict[str, str] | None = None
) -> ElasticsearchStream:
    info = {"ContainerID": CONTAINER_ID, "ContainerName": "/api", "ContainerImageName": "busybox:1"}
    stream = open_stream(
        sink or ElasticsearchSink(), config, info={**info, "ContainerLabels": {"team": "core"}}, environ=environ
    )
    assert isinstance(stream, ElasticsearchStream)
    return stream


def lines(count: int, start: int = 0, t: int = T0) -> list[LogRecord]:
    return [LogRecord("stdout", t + i * 1000 + 7, f"line {i}".encode()) for i in range(start, start + count)]


@pytest.fixture(scope="module", params=SERVERS, ids=lambda server: server.name)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchNode]:
    server = request.param
    search = SearchNode(tmp_path_factory.mktemp(server.peer), server=server).start()
    yield search
    search.stop()


# -- a real node ---------------------------------------------------------------------


async def test_every_line_is_searchable_in_a_data_stream_with_ecs_fields(
    node: SearchNode, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ElasticsearchSink()
    config = {
        "es-url": node.url,
        "es-install-template": "true",
        "es-data-stream": "logs-docker.api-test",
        "labels": "team",
    }
    stream = stream_for(config, sink)
    records = [
        *lines(2000),
        LogRecord("stderr", T0, b"x" * 50_000),
        LogRecord("stderr", T0, b"p", PartialInfo("i", 3, False)),
    ]
    assert await stream.send_batch(batch_of(records)) == DELIVERED
    assert await stream.send_batch(batch_of(records)) == DELIVERED  # a replay: no duplicates
    await close_clients(sink)
    documents = node.documents("logs-docker.api-test")
    assert len(documents) == len(records)
    assert sink.events["duplicates_avoided"] == len(records)
    by_message = {d["message"]: d for d in documents}
    first = by_message["line 0"]
    assert first["@timestamp"] == "2025-11-28T14:26:40.123456796Z"  # nanoseconds kept
    assert first["stream"] == "stdout"
    assert first["container"] == {
        "id": CONTAINER_ID,
        "name": "api",
        "image": {"name": "busybox:1"},
        "labels": {"team": "core"},
        "runtime": "docker",
    }
    assert first["labels"] == {"team": "core"}
    assert first["data_stream"] == {"type": "logs", "dataset": "docker.api", "namespace": "test"}
    assert "partial" not in first
    assert by_message["x" * 50_000]["stream"] == "stderr"  # a long line is one document
    assert by_message["p"]["partial"] == {"id": "i", "ordinal": 3, "last": False}
    mapping = node.get("/logs-docker.api-test/_mapping")
    properties = next(iter(mapping.values()))["mappings"]["properties"]
    assert properties["@timestamp"]["type"] == "date_nanos"
    assert properties["container"]["properties"]["id"]["type"] == "keyword"
    hits = node.search("logs-docker.api-test", {"match": {"message": "line 1999"}})
    assert hits[0]["message"] == "line 1999"
    if node.server.data_streams:
        streams = node.get("/_data_stream/logs-docker.api-test")["data_streams"]
        assert [s["name"] for s in streams] == ["logs-docker.api-test"]
        assert sink.events["data_streams_unavailable"] == 0
    else:
        # Elasticsearch OSS: the documented fallback, an ordinary index with logdriver's
        # mappings (above), counted and logged.
        assert "logs-docker.api-test" in node.get("/logs-docker.api-test/_settings")
        assert sink.events["data_streams_unavailable"] == 1
        assert "has no data streams" in caplog.text


async def test_dated_indices_from_a_template_name(node: SearchNode) -> None:
    stream = stream_for({"es-url": node.url, "es-index": "dated-{{.Name}}-%Y.%m.%d"})
    day = 86_400 * 10**9
    assert await stream.send_batch(batch_of(lines(10) + lines(5, 10, t=T0 + day))) == DELIVERED
    await close_clients(stream.sink)
    assert node.count("dated-api-2025.11.28") == 10
    assert node.count("dated-api-2025.11.29") == 5


async def test_a_thousand_requests_to_a_healthy_node_log_nothing_at_info(node: SearchNode) -> None:
    """httpx and elastic_transport log two INFO lines per bulk request; the plugin's log does not."""
    stream = stream_for({"es-url": node.url, "es-index": "quiet"})
    with plugin_log(LOGDRIVER_LOG_LEVEL="info") as out:
        for start in range(0, 10_000, 10):
            assert await stream.send_batch(batch_of(lines(10, start))) == DELIVERED
    await close_stream(stream)
    await close_clients(stream.sink)
    assert out.getvalue() == ""
    assert node.count("quiet") == 10_000


async def test_a_mapping_conflict_goes_to_the_dead_letters(node: SearchNode, tmp_path: Path) -> None:
    mapping = {"mappings": {"properties": {"message": {"type": "long"}}}}
    assert node.send("PUT", "/conflict", mapping) == 200
    sink = ElasticsearchSink()
    config = {"es-url": node.url, "es-index": "conflict", "batch-max-wait": "0s"}
    pipeline = open_pipeline(sink, config, state_dir=tmp_path)
    records = [LogRecord("stdout", T0 + i, text) for i, text in enumerate([b"12", b"not a number", b"34"])]
    async with running(pipeline):
        await pipeline.put(batch_of(records))
    await close_clients(sink)
    assert node.count("conflict") == 2
    letters = [
        orjson.loads(line)
        for line in next((tmp_path / "deadletter" / "elasticsearch").glob("*.jsonl")).read_bytes().splitlines()
    ]
    assert [letter["message"] for letter in letters] == ["not a number"]
    assert "mapper_parsing_exception" in letters[0]["reason"]
    assert pipeline.counters.dead_lettered == 1


# -- FakeBulkServer: failure modes on demand -------------------------------------------


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeBulkServer:
    """A FakeBulkServer serving for the test's duration (pytest-trio cancels ``nursery`` after it)."""
    server = FakeBulkServer()
    await nursery.start(server.serve)
    return server


async def test_items_throttled_with_429_are_retried_alone(fake: FakeBulkServer) -> None:
    stream = stream_for({"es-url": fake.url})
    fake.throttle_first_items = 3
    result = await stream.send_batch(batch_of(lines(10)))
    assert list(result.retry) == [0, 1, 2]
    assert len(fake.documents) == 7
    assert await stream.send_batch(batch_of(lines(3))) == DELIVERED  # the pipeline resends those
    assert len(fake.documents) == 10
    await close_clients(stream.sink)


async def test_413_splits_the_batch_and_a_single_huge_line_is_rejected(fake: FakeBulkServer) -> None:
    sink = ElasticsearchSink()
    stream = stream_for({"es-url": fake.url, "es-compress": "false"}, sink)
    fake.max_body = 20_000
    records = [*lines(200), LogRecord("stdout", T0 + 1, b"y" * 30_000)]
    result = await stream.send_batch(batch_of(records))
    await close_clients(sink)
    assert list(result.retry) == []
    assert list(result.rejected) == [200]
    assert "413" in result.rejected[200]
    assert len(fake.documents) == 200
    assert sink.events["split_batches"] > 0


@pytest.mark.parametrize(("status", "verdict"), [(429, "retry"), (503, "retry"), (401, "retry"), (400, "rejected")])
async def test_top_level_errors(fake: FakeBulkServer, status: int, verdict: str) -> None:
    sink = ElasticsearchSink()
    stream = stream_for({"es-url": fake.url}, sink)
    fake.status = status
    result = await stream.send_batch(batch_of(lines(4)))
    await close_clients(sink)
    if verdict == "retry":
        assert list(result.retry) == [0, 1, 2, 3]
    else:
        assert sorted(result.rejected) == [0, 1, 2, 3]
    assert sink.events["auth_failures"] == (1 if status == 401 else 0)


async def test_a_slow_node_times_out_and_the_resend_cannot_duplicate(fake: FakeBulkServer) -> None:
    sink = ElasticsearchSink()
    stream = stream_for({"es-url": fake.url, "es-request-timeout": "500ms"}, sink)
    fake.delay = 1.5  # the node indexes the batch, but answers after the client gave up
    result = await stream.send_batch(batch_of(lines(50)))
    assert list(result.retry) == list(range(50))
    fake.delay = 0
    await trio.sleep(1.5)
    assert await stream.send_batch(batch_of(lines(50))) == DELIVERED
    await close_clients(sink)
    assert len(fake.documents) == 50
    assert sink.events["duplicates_avoided"] == 50


async def test_a_dead_node_fails_over_to_the_next_url(fake: FakeBulkServer) -> None:
    dead = trio.socket.socket()
    await dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    stream = stream_for({"es-url": f"http://127.0.0.1:{dead_port},{fake.url}"})
    results = [await stream.send_batch(batch_of(lines(5, 5 * i))) for i in range(4)]
    await close_clients(stream.sink)
    # At most one attempt lands on the dead node before it is marked dead; nothing is lost.
    assert sum(1 for r in results if r != DELIVERED) <= 1
    assert len(fake.documents) == 5 * sum(1 for r in results if r == DELIVERED)


def test_rfc3339_nanos() -> None:
    from .es_reference import rfc3339_nanos

    moment = datetime.datetime(2025, 11, 28, 14, 26, 40, tzinfo=datetime.UTC)
    assert rfc3339_nanos(int(moment.timestamp()) * 10**9 + 5) == "2025-11-28T14:26:40.000000005Z"


_records = st.lists(
    st.builds(
        LogRecord,
        st.sampled_from(["stdout", "stderr"]),
        st.integers(0, 4 * 10**18) | st.sampled_from([T0, T0 + 1]),
        st.binary(max_size=200) | st.sampled_from([b"same", b"", b'"\\\n\t\x00\x7f\xff']),
        st.none() | st.builds(PartialInfo, st.text(max_size=20), st.integers(-(2**31), 2**31 - 1), st.booleans()),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_records, st.text(max_size=70))
def test_native_bulk_encoder_matches_the_python_reference(records: list[LogRecord], container_id: str) -> None:
    """Byte for byte, ids included: escapes, invalid UTF-8, repeats, partials, day changes."""
    target = Target("logs-%Y.%m.%d", data_stream=False, pipeline="p1")
    encoder = BulkEncoder(container_id, {"host": {"name": "h"}}, target)
    expected = es_reference.bulk_lines(
        records, container_id.encode(), encoder.action_prefix, b',"host":{"name":"h"}}\n'
    )
    assert encoder.encode(batch_of(records)) == expected


def test_item_verdicts() -> None:
    from logdriver_sinks.elasticsearch._bulk import item_verdicts

    items = [
        {"create": {"status": 201}},
        {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
        {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        {"create": {"status": 503, "error": {"type": "unavailable_shards_exception"}}},
        {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
    ]
    verdict = item_verdicts({"errors": True, "items": items}, 5)
    assert (verdict.retry, list(verdict.rejected), verdict.duplicates) == ([2, 3], [4], 1)
    assert verdict.rejected[4] == "400 mapper_parsing_exception: bad"
    assert item_verdicts({"errors": False}, 5).retry == []
    assert item_verdicts({"errors": True, "items": items[:2]}, 5).retry == [0, 1, 2, 3, 4]  # positions lost


def test_options_urls_day_patterns_and_secrets() -> None:
    sink = ElasticsearchSink()
    environ = {
        "LOGDRIVER_ES_URL": "https://a:9243/x,b",
        "LOGDRIVER_ES_PASSWORD": "hunter2",
        "LOGDRIVER_ES_USERNAME": "shipper",
    }
    own = context_for(sink, {}, environ=environ).sink_config("elasticsearch")
    assert [str(url) for url in own.get("es-url")] == ["https://a:9243/x", "http://b:9200"]
    assert own.get("es-password") == "hunter2"
    # The same nodes named in a log-opt are the same destination: the credentials apply.
    same = context_for(sink, {"es-url": "https://a:9243/x, http://b"}, environ=environ).sink_config("elasticsearch")
    assert same.get("es-password") == "hunter2"
    # Audit finding: a server at a container's es-url received the plugin's API key.
    other = context_for(sink, {"es-url": "http://mallory:9200"}, environ=environ).sink_config("elasticsearch")
    assert (other.get("es-password"), other.get("es-username")) == ("", "")
    with pytest.raises(ConfigError, match="es-password") as refused:
        context_for(sink, {"es-password": "in-docker-inspect"})
    assert "in-docker-inspect" not in str(refused.value)
    with pytest.raises(ConfigError, match="es-url") as caught:
        context_for(sink, {"es-url": "ftp://x"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="es-index"):
        stream_for({"es-index": "logs-%Y.%m.%d-%H"})


@pytest.mark.parametrize(
    ("config", "header"),
    [
        ({"es-username": "shipper", "es-password": "hunter2"}, b"Basic c2hpcHBlcjpodW50ZXIy"),
        ({"es-api-key": "a2V5aWQ6c2VjcmV0"}, b"ApiKey a2V5aWQ6c2VjcmV0"),
        ({"es-bearer-token": "t0ken"}, b"Bearer t0ken"),
    ],
)
async def test_https_with_a_test_ca_and_each_kind_of_credentials(
    fake: FakeBulkServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, config: dict[str, str], header: bytes
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    fake.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(fake.tls)
    url = fake.url
    sink = ElasticsearchSink()
    environ = {"LOGDRIVER_ES_URL": url, **{f"LOGDRIVER_{k.upper().replace('-', '_')}": v for k, v in config.items()}}
    # The operator's CA, plugin-wide: the credentials go over the operator's transport only.
    trusted = stream_for({}, sink, {**environ, "LOGDRIVER_ES_TLS_CA": str(tmp_path / "ca.pem")})
    assert await trusted.send_batch(batch_of(lines(3))) == DELIVERED
    assert fake.headers[b"authorization"] == header
    # A container naming a CA of its own reaches the node, without the operator's credentials.
    own_ca = stream_for({"es-tls-ca": str(tmp_path / "ca.pem")}, sink, environ)
    assert await own_ca.send_batch(batch_of(lines(1, 3))) == DELIVERED
    assert b"authorization" not in fake.headers
    untrusted = stream_for({}, ElasticsearchSink(), environ)  # verification is on by default
    assert list((await untrusted.send_batch(batch_of(lines(1)))).retry) == [0]
    await close_clients(sink)
    await close_clients(untrusted.sink)
    assert len(fake.documents) == 4
    secret = header.split()[1].decode()
    assert secret not in caplog.text
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(("status", "delivered"), [(400, True), (503, False)])
async def test_a_refused_template_never_holds_lines_back_for_good(
    fake: FakeBulkServer, status: int, delivered: bool
) -> None:
    fake.template_status = status
    stream = stream_for({"es-url": fake.url, "es-install-template": "true"})
    result = await stream.send_batch(batch_of(lines(3)))
    await close_clients(stream.sink)
    assert (result == DELIVERED) is delivered  # a transient refusal is retried with the lines
    assert len(fake.documents) == (3 if delivered else 0)


def test_a_typo_in_the_es_namespace_is_rejected() -> None:
    with pytest.raises(LogDriverError, match="es-ulr"):
        context_for(ElasticsearchSink(), {"es-ulr": "http://x"})


async def test_a_container_whose_index_is_throttled_does_not_hold_up_its_neighbours(
    fake: FakeBulkServer, tmp_path: Path
) -> None:
    # Audit finding: a container whose es-index got a 429 per item kept a bystander on the
    # same nodes at 0 of 300 lines indexed (its part was retried, forever, before anything else).
    fake.throttled_indices = {"throttled"}
    sink = ElasticsearchSink()
    fast = {"es-url": fake.url, "batch-max-wait": "0s", "retry-initial": "50ms", "retry-max-delay": "200ms"}
    throttled = open_pipeline(sink, {**fast, "es-index": "throttled"}, state_dir=tmp_path / "t", environ={})
    bystander = open_pipeline(sink, {**fast, "es-index": "bystander"}, state_dir=tmp_path / "b", environ={})
    assert sink.destination(context_for(sink, fast | {"es-index": "a"})) == sink.destination(context_for(sink, fast))
    async with running_together(sink, [throttled, bystander], flush_timeout=1):
        for start in range(0, 300, 30):
            throttled.try_put(batch_of(lines(30, start)))
            bystander.try_put(batch_of(lines(30, start)))
            await trio.sleep(0.05)
        with trio.fail_after(10):
            while bystander.counters.lines_out < 300:  # noqa: ASYNC110 - polling a counter
                await trio.sleep(0.05)
        assert throttled.counters.lines_out == 0
        assert throttled.counters.retried > 0  # still retrying, on its own schedule
    assert sum(doc["message"].startswith("line") for doc in fake.documents.values()) == 300
    await close_clients(sink)


def test_names_that_reach_api_paths_are_checked() -> None:
    # Audit finding: an unvalidated es-data-stream with es-install-template=true made the
    # plugin send PUT /_security/user/mallory with its API key.
    for name in ("../_security/user/mallory", "Logs", "logs docker", "_private", "a" * 256):
        with pytest.raises(ConfigError, match="es-data-stream"):
            context_for(ElasticsearchSink(), {"es-data-stream": name})
    with pytest.raises(ConfigError, match="es-pipeline"):
        context_for(ElasticsearchSink(), {"es-pipeline": "../../_security"})
    with pytest.raises(ConfigError, match="es-index"):
        stream_for({"es-index": "logs-{{.Name}}/../x"})
    assert stream_for({"es-index": "logs-{{.Name}}-%Y.%m.%d"}).target.name.startswith("logs-api-")


async def test_containers_share_a_transport_only_with_equal_settings() -> None:
    # Audit finding: 150 stopped containers with distinct es-request-timeout left 150
    # connection pools open (the plugin now closes each with its last container:
    # tests/unit/test_clients.py).
    sink = ElasticsearchSink()
    streams = [stream_for({"es-request-timeout": f"{200 + n}s"}, sink) for n in range(150)]
    shared = [stream_for({}, sink) for _ in range(2)]
    assert open_clients(sink) == 151
    assert shared[0].client is shared[1].client
    assert len({id(stream.client) for stream in streams}) == 150
    await close_clients(sink)
    assert open_clients(sink) == 0

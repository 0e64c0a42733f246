"""The OTLP sink's pieces without a network: export verdicts and the rendered protobuf.

The bodies are checked with the protobuf runtime against a schema written here
(tests/sinks/otlp_schema.py builds it from the OTLP field numbers), not against the
renderer's own reading; the real Collector is in test_conformance and the engine tests."""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import trustme

from logdriver import LogBatch, LogRecord, batch_of
from logdriver.abc import DELIVERED
from logdriver.replies import retry_after
from logdriver.testing import close_clients, open_pipeline, open_stream, running, sample_records, stage_for
from logdriver_sinks.otlp import SCOPE, OtlpSink
from logdriver_sinks.otlp._export import judge, partial_success
from logdriver_sinks.otlp._render import encode_resource, export_request, resource_logs

from ..fakes import FakeHttpEndpoint
from ..otel_peer import CollectorPeer


def _partial(rejected: int, message: bytes) -> bytes:
    inner = bytes([0x08, rejected]) + bytes([0x12, len(message)]) + message
    return bytes([0x0A, len(inner)]) + inner


def test_success_partial_success_and_garbage() -> None:
    assert judge(200, b"", {}, 10).rejected == 0
    assert partial_success(_partial(3, b"too old")) == (3, "too old")
    verdict = judge(200, _partial(3, b"too old"), {}, 10)
    assert (verdict.rejected, verdict.reason) == (3, "partial success: too old")
    assert judge(200, _partial(30, b"x"), {}, 10).rejected == 10
    assert judge(200, b"\xff\xff\xff", {}, 10).unreadable


def test_retryable_statuses_honour_retry_after() -> None:
    for status in (429, 502, 503, 504):
        assert judge(status, b"", {}, 5).retry
    assert judge(503, b"", {"retry-after": "7"}, 5).retry_after == 7.0
    now = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.UTC)
    assert retry_after("Thu, 03 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("soon") is None


def test_refusals_carry_the_servers_message() -> None:
    status = bytes([0x08, 3, 0x12, 7]) + b"bad log"
    verdict = judge(400, status, {"content-type": "application/x-protobuf"}, 4)
    assert (verdict.rejected, verdict.reason) == (4, "HTTP 400: bad log")
    assert "redirected to http://x" in judge(301, b"", {"location": "http://x"}, 4).reason
    assert judge(413, b"too large", {}, 4).rejected == 4


def otlp_schema(tmp_path: Path) -> Any:
    """The test schema compiled with protoc (grpcio-tools) and imported."""
    from grpc_tools import protoc

    here = Path(__file__).parent
    assert protoc.main(["protoc", f"-I{here}", f"--python_out={tmp_path}", str(here / "otlp_logs.proto")]) == 0
    spec = importlib.util.spec_from_file_location("otlp_logs_pb2", tmp_path / "otlp_logs_pb2.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values(key_values: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in key_values}


def test_the_body_reads_back_through_the_otlp_schema(tmp_path: Path) -> None:
    pb = otlp_schema(tmp_path)
    stage = stage_for({"multiline": "java", "parse": "json"})
    records = [
        LogRecord("stdout", 1_700_000_000_000_000_001, b"plain \xff line"),
        LogRecord("stderr", 2, b"java.lang.Error: boom"),
        LogRecord("stderr", 3, b"\tat T.main(T.java:1)"),
        LogRecord(
            "stdout",
            4,
            b'{"level":"warn","msg":"parsed","time":"2026-12-03T10:00:00Z","trace_id":"0123456789abcdef0123456789abcdef",'
            b'"span_id":"0123456789abcdef","user":{"id":7,"tags":["a",1.5,true]},"n":-3}',
        ),
    ]
    batch = LogBatch.concat([stage.process(batch_of(records), 0.0), stage.finish(0.0)])
    resource = encode_resource([("container.id", "c1"), ("service.name", "web")])
    body = export_request([resource_logs(batch.columns(), resource, SCOPE)])
    request = pb.ExportLogsServiceRequest.FromString(body)
    (rl,) = request.resource_logs
    assert values(rl.resource.attributes) == {"container.id": "c1", "service.name": "web"}
    (scope,) = rl.scope_logs
    assert scope.scope.name == "logdriver"
    plain = next(r for r in scope.log_records if r.observed_time_unix_nano == 1_700_000_000_000_000_001)
    assert plain.body.string_value == "plain \ufffd line"
    assert plain.time_unix_nano == plain.observed_time_unix_nano
    assert values(plain.attributes) == {"log.iostream": "stdout"}
    event = next(r for r in scope.log_records if r.observed_time_unix_nano == 2)
    assert event.body.string_value == "java.lang.Error: boom\n\tat T.main(T.java:1)"
    assert values(event.attributes)["logdriver.multiline.lines"] == 2
    parsed = next(r for r in scope.log_records if r.observed_time_unix_nano == 4)
    assert (parsed.body.string_value, parsed.severity_text, parsed.severity_number) == ("parsed", "warn", 13)
    assert parsed.time_unix_nano == 1_796_292_000_000_000_000
    assert parsed.trace_id.hex() == "0123456789abcdef0123456789abcdef"
    assert parsed.span_id.hex() == "0123456789abcdef"
    attrs = {kv.key: kv.value for kv in parsed.attributes}
    assert attrs["n"].int_value == -3
    user = {kv.key: kv.value for kv in attrs["user"].kvlist_value.values}
    assert user["id"].int_value == 7
    tags = [v.WhichOneof("value") for v in user["tags"].array_value.values]
    assert tags == ["string_value", "double_value", "bool_value"]


OK = (200, {"content-type": "application/x-protobuf"}, b"", 0.0)


@pytest.mark.parametrize(
    ("answers", "delivered", "dead", "event"),
    [
        ([(200, {}, b"\xff\xfe garbage", 0.0)], 5, 0, "unreadable_responses"),
        ([(413, {"content-type": "text/plain"}, b"request entity too large", 0.0)], 0, 5, None),
        ([(302, {"location": "http://elsewhere.example/v1/logs"}, b"", 0.0)], 0, 5, None),
        ([(200, {}, _partial(2, b"too old"), 0.0)], 3, 2, "partial_rejections"),
        ([(503, {"retry-after": "1"}, b"", 0.0), OK], 5, 0, "throttled"),
        ([(200, {}, b"", 3.0), OK], 5, 0, None),  # slower than otlp-timeout: retried
        ([(200, {}, b"", -0.3), OK], 5, 0, None),  # each byte in time, the whole reply never: retried
    ],
    ids=["200-garbage", "413", "redirect", "partial-success", "503-retry-after", "slow", "dripping"],
)
async def test_lying_and_broken_endpoints_get_a_counted_decision(
    tmp_path: Path, answers: list[Any], delivered: int, dead: int, event: str | None
) -> None:
    endpoint = FakeHttpEndpoint(answers)
    sink = OtlpSink()
    try:
        config = {"otlp-endpoint": endpoint.url, "otlp-timeout": "1s", "retry-initial": "100ms"}
        pipeline = open_pipeline(sink, config, state_dir=tmp_path)
        async with running(pipeline, flush_timeout=30):
            await pipeline.put(batch_of(sample_records(5)))
        stats = pipeline.counters
        assert (stats.lines_out, stats.dead_lettered, stats.dropped) == (delivered, dead, 0)
        if event is not None:
            assert sink.counters()[event] > 0
        assert set(endpoint.encodings) == {"gzip"}  # the default
    finally:
        await close_clients(sink)
        endpoint.close()


def make_test_ca(tmp_path: Path) -> trustme.CA:
    """A CA (ca.pem) and the Collector's certificate for 127.0.0.1 (server.pem, server.key)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    return ca


async def test_https_to_a_real_collector_verifies_with_the_given_ca(tmp_path: Path) -> None:
    make_test_ca(tmp_path)
    with CollectorPeer(tmp_path / "otelcol", tls=(str(tmp_path / "server.pem"), str(tmp_path / "server.key"))) as peer:
        sink = OtlpSink()
        try:
            environ = {"LOGDRIVER_OTLP_ENDPOINT": peer.endpoint}
            trusted = open_stream(sink, {"otlp-tls-ca": str(tmp_path / "ca.pem")}, environ=environ)
            assert await trusted.send_batch(batch_of(sample_records(3))) == DELIVERED
            untrusted = open_stream(sink, {}, environ=environ)  # verification is on by default
            assert list((await untrusted.send_batch(batch_of(sample_records(1)))).retry) == [0]
            assert [r["text"] for r in peer.wait_for(3)] == [r.line.decode() for r in sample_records(3)]
        finally:
            await close_clients(sink)


async def test_a_collector_that_requires_a_client_certificate(tmp_path: Path) -> None:
    ca = make_test_ca(tmp_path)
    client = ca.issue_cert("logdriver@example.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    tls = (str(tmp_path / "server.pem"), str(tmp_path / "server.key"))
    with CollectorPeer(tmp_path / "otelcol", tls=tls, client_ca=str(tmp_path / "ca.pem")) as peer:
        sink = OtlpSink()
        try:
            trusting = {"otlp-endpoint": peer.endpoint, "otlp-tls-ca": str(tmp_path / "ca.pem")}
            anonymous = open_stream(sink, trusting | {"otlp-timeout": "2s"})
            assert list((await anonymous.send_batch(batch_of(sample_records(1)))).retry) == [0]  # kept, not lost
            client_files = {"otlp-tls-cert": str(tmp_path / "client.pem"), "otlp-tls-key": str(tmp_path / "client.key")}
            signed = open_stream(sink, trusting | client_files)
            assert await signed.send_batch(batch_of(sample_records(3))) == DELIVERED
            assert [r["text"] for r in peer.wait_for(3)] == [r.line.decode() for r in sample_records(3)]
        finally:
            await close_clients(sink)


async def test_a_grpc_port_is_retried_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with CollectorPeer(tmp_path / "otelcol", protocol="grpc") as peer:
        sink = OtlpSink()
        try:
            stream = open_stream(sink, {"otlp-endpoint": peer.endpoint, "otlp-timeout": "2s"})
            assert list((await stream.send_batch(batch_of(sample_records(2)))).retry) == [0, 1]
        finally:
            await close_clients(sink)
    assert "OTLP/gRPC port (4317)" in caplog.text


async def test_a_huge_attribute_and_invalid_utf8_still_make_a_valid_request(tmp_path: Path) -> None:
    pb = otlp_schema(tmp_path)
    endpoint = FakeHttpEndpoint([OK])
    sink = OtlpSink()
    try:
        config = {"otlp-endpoint": endpoint.url, "parse": "json", "otlp-compression": "none"}
        pipeline = open_pipeline(sink, config, state_dir=tmp_path)
        huge = b'{"msg":"big","blob":"' + b"x" * 60_000 + b'"}'
        stage = stage_for({"parse": "json"})
        batch = stage.process(
            batch_of([LogRecord("stdout", 1, huge), LogRecord("stderr", 2, b"bad \xc3\x28 utf-8")]), 0.0
        )
        async with running(pipeline):
            await pipeline.put(batch)
        assert pipeline.counters.lines_out == 2
        assert endpoint.encodings == [""]
        (request,) = [pb.ExportLogsServiceRequest.FromString(body) for body in endpoint.bodies]
        big, bad = request.resource_logs[0].scope_logs[0].log_records
        assert values(big.attributes)["blob"] == "x" * 60_000
        assert bad.body.string_value == "bad \ufffd( utf-8"
    finally:
        await close_clients(sink)
        endpoint.close()


TRACE_32_BYTES = "x" + "€" * 10 + "y"
SPAN_16_BYTES = "x" + "€" * 5


def test_ids_that_are_not_hex_stay_attributes(tmp_path: Path) -> None:
    """A trace id of the right length in bytes but not hex (here multi-byte characters) is
        kept as a string attribute, not taken apart: one container's line must render. (Sliced
    two bytes at a time, "x€€..." cuts a 3-byte character.)"""
    pb = otlp_schema(tmp_path)
    stage = stage_for({"parse": "json"})
    lines = [
        '{"msg":"a","trace_id":"' + TRACE_32_BYTES + '","span_id":"' + SPAN_16_BYTES + '"}',
        '{"msg":"b","trace_id":"' + "0af7651916cd43dd8448eb211c80319z" + '"}',
        '{"msg":"c","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331"}',
    ]
    batch = stage.process(batch_of([LogRecord("stdout", i, line.encode()) for i, line in enumerate(lines)]), 0.0)
    body = export_request([resource_logs(batch.columns(), encode_resource([]), SCOPE)])
    multibyte, not_hex, valid = pb.ExportLogsServiceRequest.FromString(body).resource_logs[0].scope_logs[0].log_records
    assert values(multibyte.attributes) == {
        "log.iostream": "stdout",
        "trace_id": TRACE_32_BYTES,
        "span_id": SPAN_16_BYTES,
    }
    assert (multibyte.trace_id, multibyte.span_id) == (b"", b"")
    assert values(not_hex.attributes)["trace_id"] == "0af7651916cd43dd8448eb211c80319z"
    assert valid.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert valid.span_id.hex() == "b7ad6b7169203331"


def test_header_values_are_decoded_and_control_characters_refused() -> None:
    from logdriver_sinks.otlp import _headers

    assert _headers("Authorization=Bearer%20abc, x-team=logs") == (("authorization", "Bearer abc"), ("x-team", "logs"))
    for bad in ("a=b%0d%0aHost: evil", "a=b%00"):
        with pytest.raises(ValueError, match="control characters"):
            _headers(bad)
    for bad in ("=b", "a b=c", "no-equals"):
        with pytest.raises(ValueError, match="key=value pairs"):
            _headers(bad)


def test_image_names_and_tags() -> None:
    from logdriver_sinks.otlp import image_and_tag

    assert image_and_tag("busybox") == ("busybox", "")
    assert image_and_tag("registry:5000/app:1.2") == ("registry:5000/app", "1.2")
    assert image_and_tag("registry:5000/app") == ("registry:5000/app", "")
    assert image_and_tag("app@sha256:abc") == ("app", "")


async def test_a_partial_success_on_a_shared_request_falls_on_its_own_container() -> None:
    """Issue 30, finding 7: the refused container's part came first in the request, and the
    bystander's 200 good lines, last in it, were dead-lettered in its place."""

    def refuse_bad_records(body: bytes) -> tuple[int, dict[str, str], bytes, float]:
        return (200, {}, _partial(body.count(b"refuse me"), b"bad records"), 0.0)

    endpoint = FakeHttpEndpoint([], answer=refuse_bad_records)
    sink = OtlpSink()
    try:
        config = {"otlp-endpoint": endpoint.url, "otlp-compression": "none"}
        refused = open_stream(sink, config, info={"ContainerID": "a" * 64})
        bystander = open_stream(sink, config, info={"ContainerID": "b" * 64})
        bad = batch_of([LogRecord("stdout", 1, b"refuse me %d" % n) for n in range(100)])
        good = batch_of([LogRecord("stdout", 1, b"good %d" % n) for n in range(100)])
        results = await sink.send_together([(refused, bad), (bystander, good)])
        assert sorted(results[0].rejected) == list(range(100))
        assert results[1] == DELIVERED
        assert sink.counters()["partial_resent_alone"] == 2
    finally:
        await close_clients(sink)
        endpoint.close()

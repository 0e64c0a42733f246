"""The Fluentd sink against the real FluentServer (npm @fluent-org/logger), not a fake.

Records, tags and times as Docker's fluentd driver sends them; ack, gzip, unix
sockets, the shared-key handshake, TLS with a CA made here, a server stopped
for 10 s mid-run (in the shared conformance suite, test_conformance.py), failover
and weighted balancing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import trio
import trustme

from logdriver import LogRecord, PartialInfo, batch_of
from logdriver.abc import DELIVERED
from logdriver.testing import close_stream, open_stream
from logdriver_sinks.fluentd import FluentdSink, FluentdStream

from ..fluent_peer import FluentPeer, received

CONTAINER_ID = "ab12" * 16
T0 = 1_764_340_000_123_456_789


def stream_for(
    config: dict[str, str], sink: FluentdSink | None = None, environ: dict[str, str] | None = None
) -> FluentdStream:
    info = {"ContainerID": CONTAINER_ID, "ContainerLabels": {"app": "web"}}
    stream = open_stream(sink or FluentdSink(), config, info=info, environ=environ)
    assert isinstance(stream, FluentdStream)
    return stream


def lines(count: int, start: int = 0) -> list[LogRecord]:
    return [
        LogRecord("stderr" if i % 3 == 0 else "stdout", T0 + i * 1001, f"line {i}".encode())
        for i in range(start, start + count)
    ]


async def test_records_arrive_as_dockers_fluentd_driver_sends_them(tmp_path: Path) -> None:
    with FluentPeer(tmp_path) as peer:
        stream = stream_for({"fluentd-address": peer.address, "tag": "docker.{{.Name}}", "labels": "app"})
        records = [
            *lines(100),
            LogRecord("stdout", T0, b"x" * 40_000),  # a rejoined long line: one record
            LogRecord("stderr", T0 + 5, b"cut here", PartialInfo("pid-1", 2, True)),
        ]
        assert await stream.send_batch(batch_of(records)) == DELIVERED
        events = await received(peer, len(records))
        await close_stream(stream)
    assert len(events) == len(records)
    assert {e["tag"] for e in events} == {"docker.web"}
    assert events[1]["time"] == [T0 // 10**9, (T0 + 1001) % 10**9]  # EventTime, nanoseconds exact
    assert events[0]["record"] == {
        "container_id": CONTAINER_ID,
        "container_name": "/web",
        "source": "stderr",
        "log": "line 0",
        "app": "web",
    }
    assert [e["record"]["log"] for e in events[:100]] == [f"line {i}" for i in range(100)]
    assert events[100]["record"]["log"] == "x" * 40_000
    assert "partial_message" not in events[100]["record"]
    assert events[101]["record"] | {"log": ""} == {
        "container_id": CONTAINER_ID,
        "container_name": "/web",
        "source": "stderr",
        "log": "",
        "partial_message": "true",
        "partial_id": "pid-1",
        "partial_ordinal": "2",
        "partial_last": "true",
        "app": "web",
    }


async def test_default_tag_whole_seconds_gzip_and_no_ack(tmp_path: Path) -> None:
    with FluentPeer(tmp_path) as peer:
        stream = stream_for(
            {
                "fluentd-address": f"127.0.0.1:{peer.port}",  # Docker's bare host:port form
                "fluentd-sub-second-precision": "false",
                "fluentd-compress": "gzip",
                "fluentd-request-ack": "false",
            }
        )
        assert await stream.send_batch(batch_of(lines(500))) == DELIVERED
        events = await received(peer, 500)
        await close_stream(stream)
    assert len(events) == 500
    assert {e["tag"] for e in events} == {CONTAINER_ID[:12]}
    assert events[0]["time"] == T0 // 10**9


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "fluent.sock"
    with FluentPeer(tmp_path, PEER_UNIX=str(path)) as peer:
        stream = stream_for({"fluentd-address": f"unix://{path}"})
        assert await stream.send_batch(batch_of(lines(10))) == DELIVERED
        assert len(await received(peer, 10)) == 10
        await close_stream(stream)


async def test_handshake_with_the_right_key_and_user(tmp_path: Path) -> None:
    with FluentPeer(tmp_path, PEER_SHARED_KEY="s3cret", PEER_USER="alice", PEER_PASSWORD="pw") as peer:
        sink = FluentdSink()
        stream = stream_for(
            {},
            sink,
            environ={
                "LOGDRIVER_FLUENTD_ADDRESS": peer.address,
                "LOGDRIVER_FLUENTD_USERNAME": "alice",
                "LOGDRIVER_FLUENTD_SHARED_KEY": "s3cret",
                "LOGDRIVER_FLUENTD_PASSWORD": "pw",
            },
        )
        assert await stream.send_batch(batch_of(lines(10))) == DELIVERED
        assert await stream.send_batch(batch_of(lines(10, 10))) == DELIVERED  # kept alive
        assert len(await received(peer, 20)) == 20
        await close_stream(stream)
    assert sink.events["connects"] == 1


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"LOGDRIVER_FLUENTD_SHARED_KEY": "wrong"}, "shared key mismatch"),
        ({}, "handshake"),  # the server wants one and we have no key
    ],
)
async def test_a_failed_handshake_is_retried_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, config: dict[str, str], reason: str
) -> None:
    caplog.set_level(logging.WARNING, "logdriver.sinks.fluentd")
    with FluentPeer(tmp_path, PEER_SHARED_KEY="s3cret") as peer:
        stream = stream_for(
            {"fluentd-ack-timeout": "2s"}, environ={"LOGDRIVER_FLUENTD_ADDRESS": peer.address, **config}
        )
        result = await stream.send_batch(batch_of(lines(5)))
        await close_stream(stream)
        assert list(result.retry) == list(range(5))
        assert peer.events() == []
    assert reason in caplog.text
    assert "s3cret" not in caplog.text
    assert "wrong" not in caplog.text.replace("wrong chunk", "")


async def test_tls_with_a_ca_made_here(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    env = {"PEER_TLS_CERT": str(tmp_path / "cert.pem"), "PEER_TLS_KEY": str(tmp_path / "key.pem")}
    with FluentPeer(tmp_path, **env) as peer:
        address = f"tls://127.0.0.1:{peer.port}"
        trusted = stream_for({"fluentd-address": address, "fluentd-tls-ca": str(tmp_path / "ca.pem")})
        assert await trusted.send_batch(batch_of(lines(10))) == DELIVERED
        by_name = stream_for(
            {
                "fluentd-address": address,
                "fluentd-tls-ca": str(tmp_path / "ca.pem"),
                "fluentd-tls-server-name": "localhost",
            }
        )
        assert await by_name.send_batch(batch_of(lines(10, 10))) == DELIVERED
        # Verification is on by default: the system CAs do not know the test CA.
        untrusted = stream_for({"fluentd-address": address})
        assert list((await untrusted.send_batch(batch_of(lines(1)))).retry) == [0]
        unverified = stream_for({"fluentd-address": address, "fluentd-tls-verify": "false"})
        assert await unverified.send_batch(batch_of(lines(10, 20))) == DELIVERED
        events = await received(peer, 30)
        for stream in (trusted, by_name, untrusted, unverified):
            await close_stream(stream)
    assert len(events) == 30
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def test_failover_to_the_next_server_and_back(tmp_path: Path) -> None:
    with FluentPeer(tmp_path, "primary") as primary, FluentPeer(tmp_path, "secondary") as secondary:
        sink = FluentdSink()
        stream = stream_for(
            {"fluentd-address": f"{primary.address},{secondary.address}", "fluentd-recover-wait": "1s"}, sink
        )
        assert await stream.send_batch(batch_of(lines(10))) == DELIVERED
        await trio.to_thread.run_sync(primary.stop)
        assert await stream.send_batch(batch_of(lines(10, 10))) == DELIVERED
        assert await stream.send_batch(batch_of(lines(10, 20))) == DELIVERED
        await trio.to_thread.run_sync(primary.start)
        await trio.sleep(1.2)  # past recover-wait: the primary is tried first again
        assert await stream.send_batch(batch_of(lines(10, 30))) == DELIVERED
        first = await received(primary, 20)
        second = await received(secondary, 20)
        await close_stream(stream)
    assert [e["record"]["log"] for e in first] == [f"line {i}" for i in (*range(10), *range(30, 40))]
    assert [e["record"]["log"] for e in second] == [f"line {i}" for i in range(10, 30)]
    assert sink.events["failovers"] == 1  # the first batch after the primary died


async def test_weighted_balancing_shares_batches_by_weight(tmp_path: Path) -> None:
    with FluentPeer(tmp_path, "a") as a, FluentPeer(tmp_path, "b") as b:
        stream = stream_for(
            {"fluentd-address": f"{a.address}?weight=1,{b.address}?weight=3", "fluentd-balance": "weighted"}
        )
        for batch in range(8):
            assert await stream.send_batch(batch_of(lines(5, batch * 5))) == DELIVERED
        assert math.isclose(len(await received(a, 10)), 10)
        assert len(await received(b, 30)) == 30
        await close_stream(stream)

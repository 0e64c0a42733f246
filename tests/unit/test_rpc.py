"""Plugin RPC decoding and the HTTP server as the daemon really speaks to it."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import trio

from logdriver._exceptions import ConfigError, RpcError
from logdriver.server import rpc
from logdriver.server.unix import serve_unix

C1 = "c1" * 32
BAD = "bad0" * 16


def test_go_times() -> None:
    assert rpc.parse_go_time("0001-01-01T00:00:00Z") is None
    assert rpc.parse_go_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert rpc.parse_go_time("1970-01-01T02:00:01.000000007+02:00") == 1_000_000_007
    with pytest.raises(RpcError):
        rpc.parse_go_time("yesterday")


def test_read_logs_request() -> None:
    body = (
        b'{"Info":{"ContainerID":"' + C1.encode() + b'"},"Config":{"Since":"1970-01-01T00:00:02Z",'
        b'"Until":"0001-01-01T00:00:00Z","Tail":3,"Follow":true}}\n'
    )
    command = rpc.parse_request("/LogDriver.ReadLogs", body)
    assert command == rpc.ReadLogs({"ContainerID": C1}, 2_000_000_000, None, 3, True)


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"File":"relative"}', b'{"File":"/x"}'])
def test_malformed_start_logging(body: bytes) -> None:
    with pytest.raises(RpcError):
        rpc.parse_request("/LogDriver.StartLogging", body)


class RecordingHandler:
    def __init__(self) -> None:
        self.calls: list[object] = []

    async def start_logging(self, command: rpc.StartLogging) -> None:
        self.calls.append(command)
        if command.info["ContainerID"] == BAD:
            raise ConfigError("file-format", "xml", "json or text")

    async def stop_logging(self, command: rpc.StopLogging) -> None:
        self.calls.append(command)
        raise RuntimeError("boom")  # must still answer {}

    async def read_logs(self, command: rpc.ReadLogs) -> AsyncIterator[bytes]:
        for chunk in (b"\x00\x00\x00\x01", b"A"):
            yield chunk


def raw_call(path: str, request: bytes) -> tuple[str, bytes]:
    """One request exactly as dockerd sends it: no Content-Type, Go's Accept header."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def post(endpoint: str, body: bytes) -> bytes:
    return (
        f"POST {endpoint} HTTP/1.1\r\nHost: plugin.moby.localhost\r\n"
        f"Accept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


async def test_server_answers_like_the_daemon_expects(tmp_path: Path) -> None:
    path = str(tmp_path / "p.sock")
    handler = RecordingHandler()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_unix, path, handler)

        async def call(endpoint: str, body: bytes) -> tuple[str, bytes]:
            return await trio.to_thread.run_sync(raw_call, path, post(endpoint, body))

        assert await call("/Plugin.Activate", b"") == ("HTTP/1.1 200 ", b'{"Implements":["LogDriver"]}')
        assert await call("/LogDriver.Capabilities", b"") == ("HTTP/1.1 200 ", b'{"Cap":{"ReadLogs":true}}')
        start = b'{"File":"/run/docker/logging/f1","Info":{"ContainerID":"%s"}}\n' % C1.encode()
        assert await call("/LogDriver.StartLogging", start) == ("HTTP/1.1 200 ", b"{}")
        status, body = await call("/LogDriver.StartLogging", start.replace(C1.encode(), BAD.encode()))
        assert status == "HTTP/1.1 200 "
        assert "file-format" in orjson.loads(body)["Err"]
        assert await call("/LogDriver.StopLogging", b'{"File":"/run/docker/logging/f1"}\n') == ("HTTP/1.1 200 ", b"{}")
        assert await call("/LogDriver.StopLogging", b"garbage") == ("HTTP/1.1 200 ", b"{}")
        status, body = await call("/LogDriver.StartLogging", b"garbage")
        assert "not JSON" in orjson.loads(body)["Err"]
        status, body = await call(
            "/LogDriver.ReadLogs", b'{"Info":{"ContainerID":"%s"},"Config":{"Tail":-1}}' % C1.encode()
        )
        assert status == "HTTP/1.1 200 "
        assert b"\x00\x00\x00\x01" in body  # chunked framing around our bytes
        assert b"A" in body
        status, _ = await call("/LogDriver.Nope", b"")
        assert status.startswith("HTTP/1.1 404")
        nursery.cancel_scope.cancel()
    assert not os.path.exists(path)  # noqa: ASYNC240 - a test assertion


def test_times_beyond_64_bit_nanoseconds_are_clamped_not_an_overflow() -> None:
    # Audit finding: a Since of year 9999 with a -23:59 offset raised OverflowError after the 200.
    from logdriver._native import ReadLogsEncoder
    from logdriver.server.rpc import parse_go_time

    late = parse_go_time("9999-12-31T23:59:59.999999999-23:59")
    early = parse_go_time("1000-01-01T00:00:00+23:59")
    assert late == 2**63 - 1
    assert early == -(2**63)
    ReadLogsEncoder(late, early)  # accepted by the native encoder as they are

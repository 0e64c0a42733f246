"""Nothing a container, a client, a disk or an outage does may end the plugin or lose a line silently.

These drive the real Driver on real FIFOs and the real HTTP servers, without Docker;
tests/integration/test_hardening_engine.py repeats the cases that need the engine.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import orjson
import pytest
import trio
import trio.testing

from logdriver import ConfigError
from logdriver._records import ContainerInfo
from logdriver.config.settings import Settings
from logdriver.config.templates import extra_attributes
from logdriver.server.http import Limits
from logdriver.server.metrics import serve_metrics
from logdriver.server.rpc import StartLogging
from logdriver.server.unix import serve_unix
from logdriver.testing import encode_entry

from .test_driver import CID, FakeSinkKind, daemon_fifo, fake_driver, frames, info, wait_until


def lines_of(kind: FakeSinkKind) -> list[bytes]:
    return [record.line for stream in kind.streams for record in stream.delivered]


async def test_a_stopped_containers_lines_wait_for_the_destination(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info(sinks="fake")))
        kind.streams[0].fail_times = 10**9  # the destination is down
        sent = [b"line %d" % i for i in range(500)]
        os.write(fd, frames(*(encode_entry("stdout", i, line) for i, line in enumerate(sent))))
        os.close(fd)  # the container exits
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        await trio.sleep(300)  # five minutes of outage, in virtual time
        assert driver.statistics().deliveries.draining == 1
        assert lines_of(kind) == []
        kind.streams[0].fail_times = 0  # back
        await trio.sleep(1.5)  # noticed within about a second (retry-max-delay 1s)
        assert lines_of(kind) == sent
        assert not driver.deliveries.live
        assert driver.statistics().sinks["fake"].totals.lines_out == 500
        nursery.cancel_scope.cancel()


async def test_a_disk_spool_left_by_a_stopped_container_drains_after_a_restart_and_is_deleted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    down = FakeSinkKind()
    driver = fake_driver(tmp_path, down)
    path, fd = daemon_fifo(tmp_path)
    sent = [b"spooled %d" % i for i in range(300)]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info(sinks="fake", buffer="disk")))
        down.streams[0].fail_times = 10**9
        os.write(fd, frames(*(encode_entry("stdout", i, line) for i, line in enumerate(sent))))
        os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        with trio.move_on_after(8):
            await driver.shutdown()  # the plugin stops while the destination is still down
        nursery.cancel_scope.cancel()
    spools = list((tmp_path / "spool" / "fake").iterdir())
    assert len(spools) == 1
    assert stat.S_IMODE(spools[0].stat().st_mode) == 0o700
    assert stat.S_IMODE((spools[0] / "info.json").stat().st_mode) == 0o600  # Info holds secrets
    up = FakeSinkKind()
    restarted = fake_driver(tmp_path, up)  # no FIFO left: the container is gone
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted.run)
        await trio.sleep(2)
        assert lines_of(up) == sent
        assert not restarted.deliveries.live
        nursery.cancel_scope.cancel()
    assert not spools[0].exists()  # delivered, then deleted


async def test_the_memory_budget_bounds_every_queue_together(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind, LOGDRIVER_MEMORY_MAX_BYTES="64k")
    fifos = [daemon_fifo(tmp_path, f"fifo{n}") for n in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for path, _ in fifos:  # memory only: a hybrid queue would spill what does not fit
            await driver.start_logging(StartLogging(path, info(sinks="fake", buffer="memory")))
        for stream in kind.streams:
            stream.stall()
        for _, fd in fifos:
            for _ in range(5):
                os.write(fd, frames(*(encode_entry("stdout", 1, b"x" * 200) for _ in range(100))))
                await trio.sleep(0.01)
        await wait_until(lambda: driver.statistics().fifos.records == 1500)  # the reader thread runs in real time
        await trio.sleep(1)
        snapshot = driver.statistics().sinks["fake"]
        # Each queue alone allows 16 MiB; together they hold what 64 KiB allows (one batch over at most).
        assert driver.memory.peak <= 64_000 + 100 * 280
        assert snapshot.totals.dropped > 0
        assert snapshot.totals.dropped + sum(p.queued for p in driver.deliveries.live) == 1500
        for stream in kind.streams:
            stream.resume()
        for _, fd in fifos:
            os.close(fd)
        await wait_until(lambda: not driver.deliveries.live)
        totals = driver.statistics().sinks["fake"].totals
        assert totals.lines_out + totals.dropped == 1500  # every line delivered or counted
        assert driver.memory.used == 0
        nursery.cancel_scope.cancel()


async def test_state_files_are_root_only(tmp_path: Path) -> None:
    driver = fake_driver(tmp_path, FakeSinkKind())
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info(sinks="fake", env="SECRET")))
        os.write(fd, frames(encode_entry("stdout", 1, b"hello")))
        await wait_until(lambda: (tmp_path / "store" / CID).exists() and any((tmp_path / "store" / CID).iterdir()))
        assert stat.S_IMODE((tmp_path / "fifos.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "store").stat().st_mode) == 0o700
        segment = next((tmp_path / "store" / CID).iterdir())
        assert stat.S_IMODE(segment.stat().st_mode) == 0o600
        os.close(fd)
        nursery.cancel_scope.cancel()


async def test_a_full_disk_costs_docker_logs_its_lines_not_the_sinks(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, info(sinks="fake")))

        def full(*args: object) -> None:
            raise OSError(28, "No space left on device")

        driver.store.append = full  # type: ignore[method-assign]
        os.write(fd, frames(encode_entry("stdout", 1, b"still shipped")))
        os.close(fd)
        await wait_until(lambda: not driver.deliveries.live and driver.statistics().active_fifos == 0)
        assert lines_of(kind) == [b"still shipped"]
        assert driver.statistics().fifos.store_errors == 1
        nursery.cancel_scope.cancel()


def test_a_backtracking_regex_is_linear_under_re2() -> None:
    # Python's re takes exponential time on this; RE2 answers at once.
    container = ContainerInfo.from_json(
        {"ContainerID": CID, "ContainerLabels": {"a" * 5000 + "b": "v", "aaa": "w"}, "Config": {}}
    )
    assert extra_attributes(container, {"labels-regex": "^(a+)+$"}) == {"aaa": "w"}


async def request(path: str, data: bytes, *, hang_up: bool = True) -> bytes:
    stream = await trio.open_unix_socket(path)
    async with stream:
        await stream.send_all(data)
        if hang_up:
            await stream.send_eof()
        reply = b""
        with trio.move_on_after(30):
            while chunk := await stream.receive_some(65536):
                reply += chunk
        return reply


def post(endpoint: str, body: bytes) -> bytes:
    head = f"POST {endpoint} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


async def test_the_plugin_socket_survives_half_sent_slow_and_surplus_clients(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    driver = fake_driver(tmp_path, FakeSinkKind())
    socket_path = str(tmp_path / "plugin.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        limits = Limits(max_connections=4, request_timeout=10, idle_timeout=60)
        await nursery.start(lambda task_status: serve_unix(socket_path, driver, limits=limits, task_status=task_status))
        # Half a request, then the client stops sending: answered 400.
        reply = await request(socket_path, post("/LogDriver.StartLogging", b'{"File":"/x"}')[:-5])
        assert reply.startswith(b"HTTP/1.1 400")
        # Half a request, then the client is gone altogether: the 400 meets a broken pipe.
        for _ in range(3):
            gone = await trio.open_unix_socket(socket_path)
            await gone.send_all(post("/LogDriver.StartLogging", b'{"File":"/x"}')[:-5])
            await gone.aclose()
        # Half a request, then silence: closed after the request timeout.
        stalled = await trio.open_unix_socket(socket_path)
        await stalled.send_all(b"POST /LogDriver.StartLogging HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{")
        with trio.fail_after(11):
            assert await stalled.receive_some(100) == b""
        await stalled.aclose()
        # Idle connections beyond the cap are closed at once, and the cap frees up again.
        idle = [await trio.open_unix_socket(socket_path) for _ in range(4)]
        await trio.sleep(0.1)
        extra = await trio.open_unix_socket(socket_path)
        assert await extra.receive_some(100) == b""
        await extra.aclose()
        for stream in idle:
            await stream.aclose()
        await trio.sleep(0.1)
        reply = await request(socket_path, post("/Plugin.Activate", b""))
        assert reply.startswith(b"HTTP/1.1 200")
        assert b"LogDriver" in reply
        # Garbage and ReadLogs with impossible times get answers, not a dead plugin.
        assert (await request(socket_path, b"\x00\xff garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
        for since in ("2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "2026-02-31T00:00:00Z"):
            body = orjson.dumps({"Info": {"ContainerID": CID}, "Config": {"Since": since}})
            reply = await request(socket_path, post("/LogDriver.ReadLogs", body))
            assert reply.startswith(b"HTTP/1.1 500")
            assert b"bad time" in reply
        # Audit finding: a Since past 2262 (Go's times reach 9999) raised OverflowError after the 200.
        for since in ("9999-12-31T23:59:59.999999999-23:59", "1000-01-01T00:00:00+23:59"):
            body = orjson.dumps({"Info": {"ContainerID": CID}, "Config": {"Since": since}})
            reply = await request(socket_path, post("/LogDriver.ReadLogs", body))
            assert reply.startswith(b"HTTP/1.1 200")
            assert reply.endswith(b"\r\n0\r\n\r\n"), reply  # a whole (empty) answer, not a cut one
        for bad in ("\x00" * 64, "a" * 300, "../../etc", CID.upper()):
            body = orjson.dumps({"File": "/run/f", "Info": {"ContainerID": bad}})
            assert b"64 lower-case hex digits" in await request(socket_path, post("/LogDriver.StartLogging", body))
        assert (await request(socket_path, post("/Plugin.Activate", b""))).startswith(b"HTTP/1.1 200")
        nursery.cancel_scope.cancel()


async def test_the_metrics_port_answers_health_under_a_connection_flood(tmp_path: Path) -> None:
    # Audit finding: a local user holding 32 connections made 0 of 60 /health probes answer.
    driver = fake_driver(tmp_path, FakeSinkKind())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await nursery.start(serve_metrics, address, driver, 60.0)
        await wait_until_listening(port)
        flood = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(100)]
        answered = 0
        for _ in range(20):
            flood.append(await trio.open_tcp_stream("127.0.0.1", port))  # the flooder keeps at it
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.move_on_after(5):
                reply = b""
                while chunk := await stream.receive_some(65536):
                    reply += chunk
                answered += reply.startswith(b"HTTP/1.1 200")
            await stream.aclose()
        assert answered == 20
        for stream in flood:
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_taken_metrics_port_is_retried_and_logging_starts_anyway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Audit finding: a local user binding the metrics port first kept the plugin from starting.
    driver = fake_driver(tmp_path, FakeSinkKind())
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        with trio.fail_after(1):
            await nursery.start(serve_metrics, f"127.0.0.1:{port}", driver, 60.0)  # started: not fatal
        await trio.sleep(0.5)
        assert "cannot be bound" in caplog.text
        squatter.close()  # the port comes free: the next try takes it
        with trio.fail_after(10):
            await wait_until_listening(port)
        nursery.cancel_scope.cancel()


def test_a_malformed_metrics_address_is_a_configuration_error() -> None:
    for bad in ("localhost", "127.0.0.1:http", ":0", "1.2.3.4:70000", "a b:80"):
        with pytest.raises(ConfigError, match="LOGDRIVER_METRICS_ADDRESS"):
            Settings.from_env({"LOGDRIVER_METRICS_ADDRESS": bad})
    assert Settings.from_env({"LOGDRIVER_METRICS_ADDRESS": "[::1]:9323"}).metrics_address == "[::1]:9323"


async def wait_until_listening(port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
            continue
        await stream.aclose()
        return

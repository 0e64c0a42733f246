"""The line policy in the driver, on real FIFOs (issue 32): a rate limit's markers and its
exact accounting, ``block`` slowing the writer without a loss and without holding a stop,
and keep/drop counted per container. That ``docker logs`` still shows every line is
tests/integration/test_line_policy_engine.py's."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import trio

from logdriver import ConfigError, LogBatch, LogRecord, PartialInfo, records_of
from logdriver.config.processing import MARKER_SOURCE
from logdriver.server.driver import Driver
from logdriver.server.rpc import ReadLogs, StartLogging, StopLogging
from logdriver.testing import encode_entry, stage_for

from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until

MARKER = re.compile(rb"^logdriver: rate limit: ([\d,]+) lines \(([\d,]+) bytes\) dropped in the last \d+ s$")


def marked_lines(records: list[LogRecord]) -> tuple[int, int]:
    """(lines that passed, lines the markers say were dropped)."""
    passed = dropped = 0
    for record in records:
        if record.source == MARKER_SOURCE:
            found = MARKER.match(record.line)
            assert found, record.line
            dropped += int(found[1].replace(b",", b""))
        else:
            passed += 1
    return passed, dropped


async def stop(driver: Driver, path: str, fd: int) -> None:
    await driver.stop_logging(StopLogging(path))
    os.close(fd)


def test_options_are_checked_when_the_container_starts() -> None:
    for opts, option in [
        ({"rate-limit": "1000"}, "rate-limit"),  # a unit: /s or /m
        ({"rate-limit": "0/s"}, "rate-limit"),
        ({"rate-limit": "20000000/s"}, "rate-limit"),
        ({"rate-limit-bytes": "10/s"}, "rate-limit-bytes"),
        ({"rate-limit-burst": "10"}, "rate-limit-burst"),  # without rate-limit
        ({"rate-limit-exempt": "x"}, "rate-limit-exempt"),
        ({"rate-limit": "1/s", "rate-limit-action": "wait"}, "rate-limit-action"),
        ({"drop-lines": "("}, "drop-lines"),
        ({"min-level": "verbose"}, "min-level"),
    ]:
        with pytest.raises(ConfigError, match=option):
            stage_for(opts)
    assert stage_for({"rate-limit": "600/m", "rate-limit-burst": "5"}).statistics()["rate_limited_lines"] == 0


async def test_a_rate_limit_marks_what_it_drops_once_a_second_and_accounts_for_every_line(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    limited_path, limited = daemon_fifo(tmp_path, "limited")
    neighbour_path, neighbour = daemon_fifo(tmp_path, "neighbour")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(limited_path, container("a", **{"rate-limit": "200/s"})))
        await driver.start_logging(StartLogging(neighbour_path, container("b")))
        started = time.monotonic()
        for burst in range(25):  # 2,500 lines in 2.5 s, 1,000 a second
            entries = [encode_entry("stdout", burst * 100 + n, b"line %d" % (burst * 100 + n)) for n in range(100)]
            os.write(limited, frames(*entries))
            os.write(neighbour, frames(*entries))
            await trio.sleep(0.1)
        elapsed = time.monotonic() - started
        await stop(driver, limited_path, limited)
        await stop(driver, neighbour_path, neighbour)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    limited_stream, neighbour_stream = kind.streams
    passed, dropped = marked_lines(limited_stream.delivered)
    assert passed + dropped == 2500  # exactly
    assert 200 + 200 * 2 <= passed <= 200 + 200 * elapsed + 100, (passed, elapsed)  # the burst, then the rate
    markers = [r for r in limited_stream.delivered if r.source == MARKER_SOURCE]
    assert 2 <= len(markers) <= elapsed + 2  # one a second at most, and the last one at the end
    assert len(neighbour_stream.delivered) == 2500  # its neighbour is not limited
    counts = driver.totals.fifos.processing
    assert counts["rate_limited_lines"] == dropped
    assert counts["rate_limit_markers"] == len(markers)


async def test_block_slows_the_writer_loses_nothing_and_does_not_hold_its_stop(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind, LOGDRIVER_PIPE_SIZE="64k")  # Docker's pipe, not ours
    path, fd = daemon_fifo(tmp_path)
    lines = 12_000
    data = frames(*(encode_entry("stdout", n, b"%-30d" % n) for n in range(lines)))  # 40 bytes a frame

    def write() -> None:
        view = memoryview(data)
        while view:  # blocking writes of 4 KiB: the daemon's copier on a full pipe
            view = view[os.write(fd, view[:4096]) :]

    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        opts = {"rate-limit": "2000/s", "rate-limit-action": "block"}
        await driver.start_logging(StartLogging(path, container("a", **opts)))
        os.set_blocking(fd, True)
        started = time.monotonic()
        await trio.to_thread.run_sync(write)
        writing = time.monotonic() - started
        # The container stops with lines held and in its pipe: they are read and sent at once.
        stopping = time.monotonic()
        await stop(driver, path, fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        stopped = time.monotonic() - stopping
        await wait_until(lambda: not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    # 10,000 lines past the burst at 2,000 a second: 5 s, less the pipe and the first reads
    assert writing >= 2.0, writing
    assert stopped < 1.0, stopped
    assert [r.line for r in kind.streams[0].delivered] == [b"%-30d" % n for n in range(lines)]
    counts = driver.totals.fifos.processing
    assert counts["rate_limited_lines"] == 0
    assert counts["rate_limit_sent_at_end"] > 0


async def test_keep_and_drop_are_counted(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    opts = {"drop-lines": "healthz", "min-level": "info"}
    lines = [b"GET /healthz 200", b"DEBUG cache warm", b"INFO ready", b"GET /orders 200", b"ERROR no route"]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", **opts)))
        os.write(fd, frames(*(encode_entry("stdout", n, line) for n, line in enumerate(lines))))
        await stop(driver, path, fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    assert [r.line for r in kind.streams[0].delivered] == [lines[2], lines[3], lines[4]]
    counts = driver.totals.fifos.processing
    assert (counts["dropped_by_drop_lines"], counts["dropped_below_min_level"]) == (1, 1)


SECRET_LINES = [
    b"login password=hunter2 ok",
    b"card 4111 1111 1111 1111 paid",
    b"-----BEGIN PRIVATE KEY-----",
    b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    b"-----END PRIVATE KEY-----",
    b"password policy updated",
    b"x" * 40_000 + b" token=abc",  # a line Docker sends in 16 KiB pieces
]
REDACTED = [
    b"login password=[REDACTED] ok",
    b"card [REDACTED] paid",
    b"[REDACTED]",
    b"[REDACTED]",
    b"[REDACTED]",
    b"password policy updated",
    b"x" * 40_000 + b" token=[REDACTED]",
]


def pieces(n: int, line: bytes) -> list[bytes]:
    """The entries dockerd writes for one line: 16 KiB pieces, partial but the last."""
    chunks = [line[i : i + 16384] for i in range(0, len(line), 16384)]
    if len(chunks) == 1:
        return [encode_entry("stdout", n, line)]
    return [
        encode_entry("stdout", n, chunk, PartialInfo(f"p{n}", i + 1, i == len(chunks) - 1))
        for i, chunk in enumerate(chunks)
    ]


@pytest.mark.parametrize("store", ["true", "false"])
async def test_redaction_reaches_the_sinks_and_the_store_unless_told(tmp_path: Path, store: str) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    opts = {"redact": "credentials,keys,cards", "redact-store": store}
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", **opts)))
        os.write(fd, frames(*(entry for n, line in enumerate(SECRET_LINES) for entry in pieces(n, line))))
        await stop(driver, path, fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        shown = b"".join([chunk async for chunk in driver.read_logs(ReadLogs(container("a"), None, None, -1, False))])
        nursery.cancel_scope.cancel()
    assert [r.line for r in kind.streams[0].delivered] == REDACTED
    counts = driver.totals.fifos.processing
    assert (counts["redacted_credentials"], counts["redacted_cards"], counts["redacted_keys"]) == (2, 1, 1)
    if store == "true":
        assert not any(secret in shown for secret in (b"hunter2", b"4111", b"MIIE"))
        entries = records_of(LogBatch.from_frames(shown))
        assert max(len(entry.line) for entry in entries) <= 16384 + 1  # Docker's pieces (and a newline)
        lines, line = [], b""
        for entry in entries:  # docker logs ends a line with its newline; a piece has none
            line += entry.line
            if line.endswith(b"\n"):
                lines.append(line[:-1])
                line = b""
        assert lines == REDACTED  # every line, redacted as the sinks have it
    else:
        assert all(line in shown for line in SECRET_LINES[:6])  # docker logs keeps what was written


async def test_hash_uses_the_plugins_key_kept_root_only(tmp_path: Path) -> None:
    kind = FakeSinkKind()
    driver = fake_driver(tmp_path, kind)
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", redact="emails", **{"redact-mode": "hash"})))
        os.write(fd, frames(*(encode_entry("stdout", n, b"to jane@example.com") for n in range(2))))
        await stop(driver, path, fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0 and not driver.deliveries.live)
        nursery.cancel_scope.cancel()
    first, second = (r.line for r in kind.streams[0].delivered)
    assert first == second
    assert re.fullmatch(rb"to \[HMAC:[0-9a-f]{16}\]", first)
    key = tmp_path / "redact.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32

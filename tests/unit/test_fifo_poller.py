"""The native reader thread (FifoPoller) on real pipes: rounds, pause, EOF, removal, bounds."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator

import pytest

from logdriver._native import FifoPoller


@pytest.fixture
def poller() -> Iterator[FifoPoller]:
    poller = FifoPoller(0.02, 1 << 20, 64 << 20, 256 << 10)
    yield poller
    poller.close()


def pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    return read_end, write_end


def take_until(
    poller: FifoPoller, want: dict[int, bytes], eof: bool = False, timeout: float = 5.0
) -> dict[int, tuple[bytes, bool]]:
    """Collect rounds until every key has ``want``'s bytes (and its EOF, with ``eof``)."""
    got: dict[int, tuple[bytes, bool]] = {}
    waiter = select.epoll()
    waiter.register(poller.ready_fd, select.EPOLLIN)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiter.poll(0.1)
        for key, data, at_eof, errno in poller.take():
            assert errno == 0
            before, ended = got.get(key, (b"", False))
            got[key] = (before + data, ended or at_eof)
        if all(got.get(key, (b"", False)) in ((value, True), (value, eof)) for key, value in want.items()):
            return got
    return got


def test_every_pipe_is_read_and_eof_reported(poller: FifoPoller) -> None:
    ends = [pipe() for _ in range(3)]
    for key, (read_end, _) in enumerate(ends, 1):
        poller.add(key, read_end)
    for n, (_, write_end) in enumerate(ends, 1):
        os.write(write_end, b"line %d\n" % n)
        os.close(write_end)
    got = take_until(poller, {1: b"line 1\n", 2: b"line 2\n", 3: b"line 3\n"}, eof=True)
    assert got == {1: (b"line 1\n", True), 2: (b"line 2\n", True), 3: (b"line 3\n", True)}
    for key, (read_end, _) in enumerate(ends, 1):
        poller.remove(key)
        os.close(read_end)
    assert len(poller) == 0


def test_a_paused_pipe_is_not_read_until_resumed(poller: FifoPoller) -> None:
    read_end, write_end = pipe()
    poller.add(1, read_end)
    poller.pause(1, True)
    os.write(write_end, b"x" * 1000)
    time.sleep(0.1)
    assert poller.take() == []
    assert len(os.read(read_end, 0)) == 0  # still readable: the bytes wait in the pipe
    poller.pause(1, False)
    assert take_until(poller, {1: b"x" * 1000})[1][0] == b"x" * 1000
    poller.remove(1)
    os.close(read_end)
    os.close(write_end)


def test_read_now_and_remove_hand_over_what_was_read(poller: FifoPoller) -> None:
    read_end, write_end = pipe()
    poller.add(7, read_end)
    os.write(write_end, b"now")
    data, eof, errno = poller.read_now(7)
    assert (data, eof, errno) == (b"now", False, 0)
    os.write(write_end, b"later")
    time.sleep(0.1)
    assert poller.remove(7) in (b"later", b"")  # the thread's bytes, if it read them; never twice
    os.close(read_end)
    os.close(write_end)
    assert poller.take() == []


def test_a_fifo_is_read_at_most_max_pending_ahead(poller: FifoPoller) -> None:
    read_end, write_end = pipe()
    os.set_blocking(write_end, False)
    poller.add(1, read_end)
    written = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # nobody takes: the poller stops at 1 MiB, then the pipe fills
        try:
            written += os.write(write_end, b"y" * 65536)
        except BlockingIOError:
            time.sleep(0.05)
            try:
                written += os.write(write_end, b"y" * 65536)
            except BlockingIOError:
                break
    assert 1 << 20 <= written <= (1 << 20) + (1 << 20) + 65536  # pending cap + the pipe
    got = take_until(poller, {1: b"y" * written})
    assert len(got[1][0]) == written
    poller.remove(1)
    os.close(read_end)
    os.close(write_end)

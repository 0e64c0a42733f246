"""ReadLogs store: rotation, caps, tail/since/until, follow (virtual clock), GC."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from logdriver import PartialInfo
from logdriver._native import ReadLogsEncoder
from logdriver._proto.entry_pb2 import LogEntry
from logdriver.store.log_store import LogStore
from logdriver.store.readlogs import HEARTBEAT_FRAME, read_logs
from logdriver.testing import encode_entry, encode_frame

from ..reference.framing import FrameDecoder

CID = "c" * 64


def frames(*lines: tuple[int, bytes]) -> bytes:
    return b"".join(encode_frame(encode_entry("stdout", t, line)) for t, line in lines)


def decode(data: bytes) -> list[tuple[int, bytes]]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    out = []
    for body in decoder.next_frames().bodies:
        entry = LogEntry()
        entry.ParseFromString(body)
        if entry.source:
            out.append((entry.time_nano, entry.line))
    return out


async def collect(store: LogStore, **kwargs: object) -> list[tuple[int, bytes]]:
    args: dict[str, object] = {"since_ns": None, "until_ns": None, "tail": -1, "follow": False}
    args.update(kwargs)
    return decode(b"".join([chunk async for chunk in read_logs(store, CID, **args)]))  # type: ignore[arg-type]


@settings(deadline=None, max_examples=30)
@given(
    count=st.integers(min_value=0, max_value=60),
    tail=st.integers(min_value=-1, max_value=70),
    seg=st.integers(min_value=20, max_value=200),
)
def test_tail_over_rotated_segments(tmp_path_factory: object, count: int, tail: int, seg: int) -> None:
    root = tmp_path_factory.mktemp("store")  # type: ignore[attr-defined]
    store = LogStore(str(root), max_total_bytes=1 << 30)
    clog = store.open_writer(CID, max_size=seg, max_file=1000)
    for i in range(count):
        store.append(clog, frames((i, b"%d" % i)))
    got = trio.run(lambda: collect(store, tail=tail))
    expected = [(i, b"%d\n" % i) for i in range(count)]
    assert got == (expected if tail < 0 else expected[max(0, len(expected) - tail) :] if tail else [])


def test_max_file_and_global_cap(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), max_total_bytes=3000)
    a = store.open_writer("a" * 64, max_size=500, max_file=3)
    for i in range(100):
        store.append(a, frames((i, b"x" * 20)))
    assert len(a.segments) == 3
    assert a.size <= 1500 + 30
    b = store.open_writer("b" * 64, max_size=10_000, max_file=3)
    for i in range(100):
        store.append(b, frames((i, b"y" * 20)))
    assert store.total_bytes <= 3000
    assert store.statistics().segments_evicted_by_cap > 0
    reopened = LogStore(str(tmp_path), max_total_bytes=3000)
    assert reopened.total_bytes == store.total_bytes


async def test_newlines_partials_since_until(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), 1 << 30)
    clog = store.open_writer(CID, 1 << 20, 5)
    data = b"".join(
        encode_frame(body)
        for body in [
            encode_entry("stdout", 1, b""),
            encode_entry("stdout", 2, b"a" * 10, PartialInfo("p", 1, False)),
            encode_entry("stdout", 2, b"b", PartialInfo("p", 2, True)),
            encode_entry("stderr", 3, b"\xe2\x82A"),
            encode_entry("stdout", 4, b"tail", PartialInfo("q", 1, False)),
        ]
    )
    store.append(clog, data)
    assert await collect(store) == [
        (1, b"\n"),
        (2, b"a" * 10),
        (2, b"b\n"),
        (3, "\ufffd\ufffdA\n".encode()),
        (4, b"tail"),
    ]
    assert await collect(store, since_ns=3) == [(3, "\ufffd\ufffdA\n".encode()), (4, b"tail")]
    assert await collect(store, until_ns=2) == [(1, b"\n"), (2, b"a" * 10), (2, b"b\n")]
    assert await collect(store, tail=2, since_ns=4) == [(4, b"tail")]


def go_json_reference(line: bytes) -> bytes:
    """Go's encoding/json: one U+FFFD per byte that is not part of valid UTF-8."""
    out, rest = [], line
    while True:
        try:
            out.append(rest.decode("utf-8"))
            return "".join(out).encode()
        except UnicodeDecodeError as error:
            out.append(rest[: error.start].decode("utf-8") + "\ufffd" * (error.end - error.start))
            rest = rest[error.end :]


def served(line: bytes) -> bytes:
    encoder = ReadLogsEncoder(None, None)
    data, consumed = encoder.encode(encode_frame(encode_entry("stdout", 1, line)))
    assert consumed > 0
    (got,) = decode(data)
    return got[1]


def test_go_json_replacement_is_per_byte() -> None:
    assert served(b"ok") == b"ok\n"
    assert served(b"\xed\xa0\x80") == "\ufffd\ufffd\ufffd\n".encode()
    assert served(b"\xff") == "\ufffd\n".encode()


@given(st.binary(max_size=40))
def test_invalid_utf8_is_replaced_as_go_does(line: bytes) -> None:
    assert served(line) == go_json_reference(line) + b"\n"


async def test_follow_streams_new_entries_and_ends_at_close(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = LogStore(str(tmp_path), 1 << 30)
    clog = store.open_writer(CID, max_size=200, max_file=100)
    store.append(clog, frames((0, b"before")))
    received: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_logs(store, CID, since_ns=None, until_ns=None, tail=0, follow=True, heartbeat=10):
            received.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        for i in range(1, 30):
            await trio.sleep(1)
            store.append(clog, frames((i, b"line %d" % i)))  # rotates every few lines
        await trio.sleep(25)  # idle: heartbeats keep the daemon's reader awake
        store.close_writer(clog)
    lines = decode(b"".join(received))
    assert lines == [(i, b"line %d\n" % i) for i in range(1, 30)]
    assert HEARTBEAT_FRAME in received


def test_garbage_collection_policy(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), 1 << 30)
    live = store.open_writer("l" * 64, 1000, 2)
    gone = store.open_writer("g" * 64, 1000, 2)
    idle = store.open_writer("i" * 64, 1000, 2)
    for clog in (live, gone, idle):
        store.append(clog, frames((1, b"x")))
    store.close_writer(gone)
    store.close_writer(idle)
    now = idle.last_active
    assert store.collect_garbage(now + 10, retention=100, removed={"g" * 64, "l" * 64}) == ["g" * 64]
    assert store.collect_garbage(now + 1000, retention=100) == ["i" * 64]
    assert store.container_ids() == ["l" * 64]  # a live writer is never collected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l" * 64]


async def test_read_logs_lets_other_tasks_run_while_it_decodes(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path), 1 << 40)
    clog = store.open_writer(CID, 1 << 30, 5)
    store.append(clog, frames(*((i, b"y" * 100) for i in range(30_000))))  # about 3.6 MB
    store.close_writer(clog)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        # --since in the future: nothing is sent, everything is decoded; and a tail over it all.
        assert await collect(store, since_ns=10**18) == []
        assert len(await collect(store, tail=10**9)) == 30_000
        nursery.cancel_scope.cancel()
    assert ticks >= 20  # one turn per 256 KiB decoded, not one for the whole store


def test_the_largest_holder_pays_for_the_cap(tmp_path: Path) -> None:
    """Issue 30 ("every input at its worst"): eviction went oldest-first across every
    container, so one container writing flat out pushed a quiet neighbour's history out of
    ``docker logs``. Now the container holding the most loses its oldest segments first."""
    store = LogStore(str(tmp_path), max_total_bytes=20_000)
    quiet = store.open_writer("q" * 64, max_size=1000, max_file=5)
    for i in range(20):
        store.append(quiet, frames((i, b"q" * 20)))
    kept = sum(quiet.sizes.values())
    hog = store.open_writer("h" * 64, max_size=1000, max_file=1000)
    for i in range(2000):
        store.append(hog, frames((i, b"h" * 20)))
    assert store.total_bytes <= 20_000
    assert sum(quiet.sizes.values()) == kept  # every line of the quiet one is still there
    assert store.statistics().segments_evicted_by_cap > 0

"""Fault injection: every open, write, truncate, rename and fsync of the store, spool,
registry and file sink fails once, in turn, and nothing goes astray.

Each scenario runs once to count the calls it makes, then once per call with that
call failing (EIO, or ENOSPC for writes). After the fault the scenario goes on
without faults, and the checks are the same every time:

- no descriptor the component keeps is a number it already closed (audit finding:
  a failed rotation left the old number in use, and container A's lines went into
  container B's segment, or A's StopLogging closed C's FIFO);
- a file opened by someone else after the fault (another container's FIFO, say)
  receives nothing;
- what the component reports as kept is kept, whole, in order.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from logdriver import LogRecord, batch_of, records_of
from logdriver.config.pipeline_options import Overflow
from logdriver.delivery.spool import DiskQueue, SpoolReadError
from logdriver.reading.registry import FifoRegistry
from logdriver.store.log_store import LogStore, iter_chunks
from logdriver.testing import encode_entry, encode_frame, open_stream
from logdriver_sinks.file import FileSink

FAULTY = ("open", "write", "ftruncate", "replace", "rename", "fsync", "fstat", "unlink")


class Faults:
    """Counts calls of the ``os`` functions above; makes call number ``fail_at`` fail."""

    def __init__(self, fail_at: int = -1) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.failed: str | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        originals = {name: getattr(os, name) for name in FAULTY}
        real_open = builtins.open

        def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                if self.calls - 1 == self.fail_at:
                    self.failed = name
                    code = errno.ENOSPC if name == "write" else errno.EIO
                    raise OSError(code, os.strerror(code))
                return real(*args, **kwargs)

            return call

        for name, real in originals.items():
            setattr(os, name, wrap(name, real))
        builtins.open = wrap("builtins.open", real_open)
        try:
            yield
        finally:
            for name, real in originals.items():
                setattr(os, name, real)
            builtins.open = real_open


def each_fault(scenario: Callable[[Path, Faults], None], tmp_path: Path) -> int:
    """Run ``scenario`` once per call it makes, that call failing; returns how many."""
    counting = Faults()
    scenario(tmp_path / "count", counting)
    assert counting.calls > 0
    for n in range(counting.calls):
        faults = Faults(fail_at=n)
        scenario(tmp_path / f"fault-{n}", faults)
    return counting.calls


def fd_target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def frame(n: int) -> bytes:
    return encode_frame(encode_entry("stdout", n, b"line %04d " % n + b"x" * 40))


def test_store_rotation_faults_never_reuse_a_closed_descriptor(tmp_path: Path) -> None:
    def scenario(root: Path, faults: Faults) -> None:
        store = LogStore(str(root / "store"), max_total_bytes=1 << 30)
        clog = store.open_writer("a" * 64, max_size=300, max_file=3)
        written = []
        with faults.active():
            for n in range(20):
                try:
                    store.append(clog, frame(n))
                    written.append(n)
                except OSError:
                    pass
                if clog.fd >= 0:
                    assert fd_target(clog.fd).startswith(clog.directory), faults.failed
        # Another container's FIFO opens now: it takes the lowest free number.
        bystander = os.open(root / "bystander", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for n in range(20, 30):
                store.append(clog, frame(n))
                written.append(n)
            store.close_writer(clog)
            os.fstat(bystander)  # A's close did not close it
            assert os.path.getsize(root / "bystander") == 0
        finally:
            os.close(bystander)
        kept = []
        for seq in clog.segments:
            for chunk, _ in iter_chunks(clog.path(seq)):
                kept.append(chunk)
        data = b"".join(kept)
        assert data == b"".join(frame(n) for n in written[-len(kept_frames(data)) :]), faults.failed

    assert each_fault(scenario, tmp_path) > 10


def kept_frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos : pos + 4 + length])
        pos += 4 + length
    return out


def lines_of(batch: object) -> list[bytes]:
    return [record.line for record in records_of(batch)]  # type: ignore[arg-type]


def test_spool_faults_keep_what_was_accepted_and_never_reuse_a_descriptor(tmp_path: Path) -> None:
    def scenario(root: Path, faults: Faults) -> None:
        directory = str(root / "spool")
        accepted: list[bytes] = []
        acked = 0
        with faults.active():
            try:
                spool: DiskQueue | None = DiskQueue(
                    directory, 1 << 30, 1 << 30, Overflow.BLOCK, segment_bytes=200, fsync_interval=0
                )
            except OSError:
                spool = None
            for n in range(12):
                if spool is None:
                    break
                lines = [b"%d-%d" % (n, i) for i in range(3)]
                try:
                    if spool.offer(batch_of([LogRecord("stdout", n, line) for line in lines]), 0.0).accepted:
                        accepted += lines
                except OSError:
                    pass
                if spool._fd >= 0:
                    assert fd_target(spool._fd).startswith(directory), faults.failed
                if n % 4 == 3:
                    try:
                        taken = spool.take(4, 1 << 20)
                    except SpoolReadError as exc:  # that record is lost, counted; the next ack passes it
                        taken = None
                        acked += exc.lines
                        spool.ack()
                    if taken is not None:
                        assert lines_of(taken) == accepted[acked : acked + len(taken)]
                        acked += len(taken)  # delivered: a failed cursor write only means resent later
                        with suppress(OSError):
                            spool.ack()
            if spool is not None:
                with suppress(OSError):
                    spool.close()
        bystander = os.open(root / "bystander", os.O_RDWR | os.O_CREAT, 0o600)
        os.close(bystander)
        reopened = DiskQueue(directory, 1 << 30, 1 << 30, Overflow.BLOCK, segment_bytes=200)
        recovered = []
        while (batch := reopened.take(1000, 1 << 30)) is not None:
            recovered += lines_of(batch)
        reopened.close()
        # At least once, in order: everything accepted and not acked comes back; a failed
        # cursor write may bring back some acked lines too, never a line out of order.
        assert recovered == accepted[len(accepted) - len(recovered) :], faults.failed
        assert len(recovered) >= len(accepted) - acked, faults.failed

    assert each_fault(scenario, tmp_path) > 10


def test_spool_record_unreadable_is_counted_and_the_rest_delivered(tmp_path: Path) -> None:
    spool = DiskQueue(str(tmp_path), 1 << 30, 1 << 30, Overflow.BLOCK, segment_bytes=100)
    for n in range(4):
        spool.offer(batch_of([LogRecord("stdout", n, b"line %d" % n + b"y" * 60)]), 0.0)
    first = sorted(os.listdir(tmp_path))[0]
    with open(tmp_path / first, "r+b") as handle:  # a bit flipped on disk
        handle.seek(20)
        handle.write(b"Z")
    with pytest.raises(SpoolReadError) as caught:
        spool.take(10, 1 << 20)
    assert caught.value.lines == 1
    assert spool.unreadable_entries == 1
    rest = spool.take(10, 1 << 20)
    assert rest is not None
    assert lines_of(rest)[0].startswith(b"line 1")


def test_registry_faults_leave_the_old_file_or_the_new(tmp_path: Path) -> None:
    def scenario(root: Path, faults: Faults) -> None:
        root.mkdir()
        path = str(root / "fifos.json")
        registry = FifoRegistry(path)
        registry.add("/run/a", {"ContainerID": "a"})
        with faults.active():
            for name in ("b", "c"):
                with suppress(OSError):
                    registry.add(f"/run/{name}", {"ContainerID": name})
            registry.remove("/run/a")
            with suppress(OSError):
                registry.flush()
        with open(path, "rb") as handle:
            saved = orjson.loads(handle.read())
        assert set(saved) <= {"/run/a", "/run/b", "/run/c"}, faults.failed
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"

    assert each_fault(scenario, tmp_path) >= 6


def test_file_sink_faults_write_each_line_once_and_whole(tmp_path: Path) -> None:
    def scenario(root: Path, faults: Faults) -> None:
        sink = FileSink(str(root / "files"))
        stream = open_stream(sink, {"file-max-size": "1k", "file-max-file": "3"})
        delivered: list[bytes] = []

        async def send(lines: list[bytes]) -> list[int]:
            result = await stream.send_batch(batch_of([LogRecord("stdout", 1, line) for line in lines]))
            return list(result.retry) + list(result.rejected)

        with faults.active():
            for n in range(10):
                lines = [b"%d-%d " % (n, i) + b"z" * 100 for i in range(3)]
                failed = trio.run(send, lines)
                delivered += [line for i, line in enumerate(lines) if i not in failed]
                fd = getattr(stream, "_fd", -1)
                if fd >= 0:
                    assert fd_target(fd).startswith(str(root / "files")), faults.failed
        bystander = os.open(root / "bystander", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            trio.run(send, [b"after"])
            trio.run(stream.aclose)
            assert os.path.getsize(root / "bystander") == 0
        finally:
            os.close(bystander)
        found = []
        for name in sorted(os.listdir(root / "files"), reverse=True):
            with open(root / "files" / name, "rb") as handle:
                for raw in handle.read().splitlines():
                    found.append(orjson.loads(raw)["message"].encode())
        # Every delivered line is in the files once (rotation may have deleted the oldest).
        assert found[-1] == b"after"
        assert len(found) == len(set(found)), faults.failed
        assert set(found) - {b"after"} <= set(delivered), faults.failed

    assert each_fault(scenario, tmp_path) > 10

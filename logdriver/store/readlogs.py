"""Serving ``docker logs`` from the store, byte-identical to json-file.

What json-file does and this module copies (docker-logging-protocol.md §4):
- every stored entry is one message, so a line Docker split at 16 KiB is
  several messages and ``--tail`` counts them, as json-file's lines do;
- the newline the daemon stripped is put back on complete lines and on the
  ``last`` chunk, not on other chunks nor on an unterminated final line;
- json-file stores lines as JSON strings and Go replaces each invalid UTF-8
  byte with U+FFFD on the way in; the same replacement happens here;
- frames are decoded and re-encoded natively (``ReadLogsEncoder``), by the same
  decoder that reads the FIFOs: one truth about what a frame holds;
- ``--tail`` is applied first, then ``--since``/``--until`` (the daemon does
  not apply tail for plugins);
- a follow stream ends when the container's last FIFO is drained after
  StopLogging, or when the store removes the container.
Follow streams also send an empty frame every ``heartbeat`` seconds: the
daemon only notices a departed ``docker logs -f`` client when a frame
arrives, and drops an entry with no source without printing it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import trio

from logdriver._native import ReadLogsEncoder, whole_frames
from logdriver.store.log_store import ContainerLog, LogStore, iter_chunks

HEARTBEAT_FRAME = b"\x00\x00\x00\x00"
_BATCH_BYTES = 256 << 10


async def _tail_start(clog: ContainerLog, tail: int) -> tuple[int, int]:
    """(segment index, frames to skip in it) so that ``tail`` frames remain."""
    if tail < 0:
        return 0, 0
    remaining = tail
    for index in range(len(clog.segments) - 1, -1, -1):
        count = 0
        for data, _ in iter_chunks(clog.path(clog.segments[index])):
            count += whole_frames(data)[1]
            await trio.lowlevel.checkpoint()  # a chunk at a time: other containers keep going
        if count >= remaining:
            return index, count - remaining
        remaining -= count
    return 0, 0


async def read_logs(
    store: LogStore,
    container_id: str,
    *,
    since_ns: int | None,
    until_ns: int | None,
    tail: int,
    follow: bool,
    heartbeat: float = 2.0,
) -> AsyncGenerator[bytes, None]:
    """Yield ReadLogs response bytes (frames, batched) for one container."""
    clog = store.get(container_id)
    if clog is None:
        return
    store.touch(clog)  # reading counts as activity for retention
    encoder = ReadLogsEncoder(since_ns, until_ns)
    segments = list(clog.segments)
    start_index, skip = await _tail_start(clog, tail) if tail != 0 else (len(segments), 0)
    seq, offset = (segments[-1], clog.sizes.get(segments[-1], 0)) if segments else (0, 0)
    pending = b""
    for index in range(start_index, len(segments)):
        seq, offset = segments[index], 0
        for data, offset in iter_chunks(clog.path(seq)):  # noqa: B007 - offset is used after the loop
            dropped = min(skip, whole_frames(data)[1]) if skip else 0
            skip -= dropped
            pending += encoder.encode(data, dropped)[0]
            await trio.lowlevel.checkpoint()  # one chunk decoded per turn of the event loop
            if encoder.past_until:
                if pending:
                    yield pending
                return
            if len(pending) >= _BATCH_BYTES:
                yield pending
                pending = b""
    if pending:
        yield pending
    if not follow or (until_ns is not None and encoder.past_until):
        return
    async for data in _follow(store, container_id, clog, encoder, seq, offset, heartbeat):
        yield data


async def _follow(
    store: LogStore,
    container_id: str,
    clog: ContainerLog,
    encoder: ReadLogsEncoder,
    seq: int,
    offset: int,
    heartbeat: float,
) -> AsyncGenerator[bytes, None]:
    while True:
        finished = clog.writers == 0 or store.get(container_id) is not clog
        changed = clog.watch()
        for current in list(clog.segments):
            if current < seq:
                continue
            if current > seq:
                seq, offset = current, 0
            for chunk, reached in iter_chunks(clog.path(seq), offset):
                offset = reached
                data = encoder.encode(chunk)[0]
                if data:
                    yield data
                else:
                    await trio.lowlevel.checkpoint()
                if encoder.past_until:
                    return
        if finished:
            return
        with trio.move_on_after(heartbeat) as scope:
            await changed.wait()
        if scope.cancelled_caught:
            yield HEARTBEAT_FRAME

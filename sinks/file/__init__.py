"""File sink: one JSON-lines (or raw text) file per container, rotated by size.

File name: ``<12-char id>-<name>.log`` under the sink directory
(``LOGDRIVER_FILE_DIR``), the name cut to ``NAME_BYTES`` bytes. Rotation as json-file
does it: when the file passes ``file-max-size`` it becomes ``.1``, ``.1`` becomes
``.2`` and so on, keeping ``file-max-file`` files in all. A file rotates after the
line that reaches ``file-max-size``, so it passes the limit by less than one line.

A rotation renames every kept file, so its cost is bounded against the size: at most
one rename per ``BYTES_PER_RENAME`` of ``file-max-size`` (about 2,000 renames per MiB
written at worst, where 1k with 1000 files was a million), and the renames run in the sink's own worker threads
(``THREADS``), never on the event loop. A container has its own worker (its file is
its destination) when its rotations are costly, so they never delay another's lines;
it has one rotation at a time, so it holds one of the threads at most.

Errors that no retry can mend (a name the file system refuses, a directory where the
file should be) send the lines to the dead letters; others (a full disk) are retried.

A JSON record::

    {"time":"2026-11-28T14:02:36.123456789Z","stream":"stdout","message":"...",
     "container_id":"<64 hex>","container_name":"web","image":"busybox",
     "partial":{"id":..,"ordinal":..,"last":..},   # only for a line not rejoined whole
     "tag":"...", "attrs":{...}}                   # only when tag / labels / env ask

The constant part of each record is serialised once per container; the rest is
rendered for the whole batch in Rust (``native/``, built as ``logdriver_sinks.file._render``),
which keeps this sink off the per-line Python path.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import orjson
import trio

from logdriver import ConfigError, LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import SinkConfig, choice, env_name, int_between, option, size_between

from ._render import json_lines, text_lines

log = logging.getLogger("logdriver.sinks.file")

NAME_BYTES = 100  # of the container's name in the file name (most file systems allow 255 in all)
BYTES_PER_RENAME = 500  # file-max-file - 1 may be at most file-max-size / this
THREADS = 4  # the sink's own worker threads, for rotations (one container uses one at most)
# Above this many renames per MiB written, a container's rotations are costly enough to
# get it a worker of its own (the default, 5 files of 100m, is 0.04; 1000 of 500k is 2,100).
SHARED_RENAMES_PER_MIB = 10
# Errors a retry cannot mend: the lines go to the dead letters instead of holding the queue.
PERMANENT = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.EINVAL})


@dataclass(frozen=True, slots=True)
class FileConfig(SinkConfig):
    """The file sink's options for one container (its log-opts over ``LOGDRIVER_<NAME>`` defaults)."""

    format: str = option("file-format", "json", "json or text", "JSON lines or the raw text", choice("json", "text"))
    max_size: int = option(
        "file-max-size", "100m", "a size from 1k to 100g", "bytes per file before rotation", size_between(1000, 10**11)
    )
    max_file: int = option(
        "file-max-file", "5", "an integer from 1 to 1000", "files kept per container", int_between(1, 1000)
    )
    directory: str = option(
        "file-dir",
        "",
        "an absolute path; empty: files/ under the state directory",
        "where every container's file is written (plugin-wide only)",
        plugin_only=True,
    )


class FileSink(Sink):
    name = "file"
    config = FileConfig
    # Local disk: block like json-file rather than drop, and write what each read brought.
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"overflow": "block", "batch-max-wait": "0s"}

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.threads = trio.CapacityLimiter(THREADS)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSink:
        """``LOGDRIVER_FILE_DIR``, by default ``files`` under the state directory."""
        return cls(settings.environ.get(env_name("file-dir")) or os.path.join(settings.state_dir, "files"))

    def destination(self, context: ContainerContext) -> str:
        """Containers whose rotations are cheap share one worker (one wake-up per batch
        interval for all of them); one whose rotations are costly (more than
        ``SHARED_RENAMES_PER_MIB`` renames per MiB written) has a worker of its own, so that
        its rotations never hold back its neighbours' writes, as they did when one worker
        waited for every container's rotations."""
        config = context.config(FileConfig)
        renames_per_mib = (config.max_file - 1) * (1 << 20) / config.max_size
        return self.directory if renames_per_mib <= SHARED_RENAMES_PER_MIB else file_path(self.directory, context)

    def open_stream(self, context: ContainerContext, client: None = None) -> FileStream:
        return FileStream(self.directory, context, self.threads)


def file_path(directory: str, context: ContainerContext) -> str:
    """``<directory>/<12-char id>-<name>.log``, the name cut to ``NAME_BYTES`` bytes."""
    info = context.info
    name = info.name.removeprefix("/").replace("/", "_") or "container"
    name = name.encode()[:NAME_BYTES].decode(errors="ignore")
    return os.path.join(directory, f"{info.short_id}-{name}.log")


class FileStream(SinkStream):
    def __init__(self, directory: str, context: ContainerContext, threads: trio.CapacityLimiter | None = None) -> None:
        self.path = file_path(directory, context)
        self.directory = directory
        config = context.config(FileConfig)
        self.text = config.format == "text"
        self.max_size = config.max_size
        self.max_file = config.max_file
        most = 1 + self.max_size // BYTES_PER_RENAME
        if self.max_file > most:
            raise ConfigError(
                "file-max-file",
                str(self.max_file),
                f"at most {most} with file-max-size {self.max_size} (each rotation renames every "
                f"kept file: one per {BYTES_PER_RENAME} bytes of file-max-size at most)",
            )
        self.threads = threads or trio.CapacityLimiter(1)
        self._suffix = b"," + orjson.dumps(context.record_fields())[1:] + b"\n"
        self._fd = -1
        self._size = 0

    def _open(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        # Container output: root only, like json-file's files (and a file an older
        # version created with another mode is tightened).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            self._size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def encode(self, batch: LogBatch) -> bytes:
        """The batch's lines in this stream's format, one per ``\\n`` (content never has one)."""
        return text_lines(batch.columns()) if self.text else json_lines(batch.columns(), self._suffix)

    async def send_batch(self, batch: LogBatch) -> SendResult:
        """Write the batch; after a write error, only the lines not written whole are retried."""
        data = self.encode(batch)
        done = 0  # bytes of ``data`` written whole (each chunk ends at a line's newline)
        try:
            if self._fd < 0:
                self._open()
            # Rotate after the line that reaches max-size; lines end at their only newline.
            while self._size + len(data) - done >= self.max_size:
                cut = data.find(b"\n", done + max(self.max_size - self._size - 1, 0)) + 1
                if cut == 0:
                    break
                self._write(data[done:cut])
                done = cut
                await trio.to_thread.run_sync(self._rotate, limiter=self.threads)
            if done < len(data):
                self._write(data[done:])
        except OSError as exc:
            log.error("file sink cannot write %s: %s", self.path, exc)
            unwritten = range(data.count(b"\n", 0, done), len(batch))
            if exc.errno in PERMANENT:
                return SendResult(rejected=dict.fromkeys(unwritten, f"file sink: {exc.strerror}"))
            # Reopen on the next attempt: an operator may have deleted the file to free space,
            # and an open descriptor would keep that space taken.
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                with contextlib.suppress(OSError):
                    os.close(fd)
            return SendResult(retry=unwritten)
        return DELIVERED

    def _write(self, data: bytes) -> None:
        """All of ``data`` or, on error, none of it: a partial write is cut off again,
        so that a retry writes each line once and no line is left half-written."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if len(view) < len(data):
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        fd, self._fd = self._fd, -1
        os.close(fd)
        if self.max_file <= 1:
            os.truncate(self.path, 0)
        else:
            for index in range(self.max_file - 1, 0, -1):
                older = f"{self.path}.{index - 1}" if index > 1 else self.path
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index}")
        self._open()

    async def aclose(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

"""The file sink's renderer and rotation; its delivery contract is in test_conformance.py."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logdriver import ConfigError, LogRecord, PartialInfo, batch_of
from logdriver.abc import DELIVERED
from logdriver.testing import close_stream, open_stream, sample_records
from logdriver_sinks.file import FileSink, FileStream
from logdriver_sinks.file._render import json_lines, text_lines


def test_json_lines_are_valid_json_with_every_field() -> None:
    records = [
        LogRecord("stdout", 1_764_338_556_000_000_001, b'quote " backslash \\ tab \t ctl \x01 bad \xff'),
        LogRecord("stderr", 5, b"", PartialInfo("p" * 64, 2, True)),
        LogRecord("weird", 0, "ünï".encode()),
    ]
    lines = json_lines(batch_of(records).columns(), b',"k":"v"}\n').splitlines()
    parsed = [orjson.loads(line) for line in lines]
    assert parsed == [
        {
            "time": "2025-11-28T14:02:36.000000001Z",
            "stream": "stdout",
            "message": 'quote " backslash \\ tab \t ctl \x01 bad \ufffd',
            "k": "v",
        },
        {
            "time": "1970-01-01T00:00:00.000000005Z",
            "stream": "stderr",
            "message": "",
            "partial": {"id": "p" * 64, "ordinal": 2, "last": True},
            "k": "v",
        },
        {"time": "1970-01-01T00:00:00.000000000Z", "stream": "weird", "message": "ünï", "k": "v"},
    ]


@given(
    st.lists(
        st.builds(
            LogRecord,
            st.sampled_from(["stdout", "stderr", "x"]),
            st.integers(-(2**63), 2**63 - 1),
            st.binary(max_size=40),
            st.none() | st.builds(PartialInfo, st.text(max_size=5), st.integers(-(2**31), 2**31 - 1), st.booleans()),
        ),
        max_size=20,
    )
)
def test_every_record_renders_as_one_json_line_and_one_text_line(records: list[LogRecord]) -> None:
    batch = batch_of(records)
    lines = json_lines(batch.columns(), b"}\n").splitlines()
    assert [orjson.loads(line)["message"] for line in lines] == [r.line.decode("utf-8", "replace") for r in records]
    assert text_lines(batch.columns()) == b"".join(r.line + b"\n" for r in records)


async def test_rotation_keeps_max_file_files_of_about_max_size(tmp_path: Path) -> None:
    stream = open_stream(FileSink(str(tmp_path)), {"file-format": "text", "file-max-size": "1k", "file-max-file": "3"})
    assert isinstance(stream, FileStream)
    records = sample_records(300)  # about 6 KB
    for start in range(0, 300, 7):
        await stream.send_batch(batch_of(records[start : start + 7]))
    await close_stream(stream)
    files = sorted(tmp_path.glob("*.log*"))  # noqa: ASYNC240 - a test reading its result
    assert [f.name.rsplit(".", 1)[-1] for f in files] == ["log", "1", "2"]
    assert all(f.stat().st_size < 1000 + 30 for f in files)  # past max-size by less than one line
    kept = b"".join(f.read_bytes() for f in reversed(files)).splitlines()
    assert kept == [r.line for r in records][-len(kept) :]  # the newest lines, in order


def test_rotation_count_is_bounded_by_the_size_it_rotates_at(tmp_path: Path) -> None:
    # Audit finding: file-max-size=1k with file-max-file=1000 renamed 999 files per KB on the
    # event loop (Activate and other containers' StartLogging timed out at 20 s).
    sink = FileSink(str(tmp_path))
    with pytest.raises(ConfigError) as refused:
        open_stream(sink, {"file-max-size": "1k", "file-max-file": "1000"})
    assert "file-max-file" in str(refused.value)
    assert "at most 3" in str(refused.value)
    open_stream(sink, {"file-max-size": "1m", "file-max-file": "1000"})  # 2 renames per KB at worst


async def test_a_name_the_file_system_refuses_is_cut_and_permanent_errors_dead_letter(tmp_path: Path) -> None:
    # Audit finding: a 240-character container name (ENAMETOOLONG) was retried forever ahead
    # of every other container writing files.
    sink = FileSink(str(tmp_path))
    long_name = open_stream(sink, {}, info={"ContainerName": "/" + "n" * 240, "ContainerID": "1" * 64})
    assert isinstance(long_name, FileStream)
    assert await long_name.send_batch(batch_of(sample_records(3))) == DELIVERED
    assert len(os.path.basename(long_name.path)) <= 12 + 1 + 100 + 4
    blocked = open_stream(sink, {}, info={"ContainerName": "/blocked", "ContainerID": "2" * 64})
    assert isinstance(blocked, FileStream)
    os.mkdir(blocked.path)  # a directory where its file should be: no retry mends that
    result = await blocked.send_batch(batch_of(sample_records(3)))
    assert not result.retry
    assert sorted(result.rejected) == [0, 1, 2]


async def test_a_file_left_with_another_mode_is_made_root_only(tmp_path: Path) -> None:
    stream = open_stream(FileSink(str(tmp_path)), {})
    assert isinstance(stream, FileStream)
    with open(stream.path, "wb"):  # noqa: ASYNC230 - setting up the file an older version left
        pass
    os.chmod(stream.path, 0o644)
    await stream.send_batch(batch_of(sample_records(1)))
    assert os.stat(stream.path).st_mode & 0o777 == 0o600

"""The file sink's renderer and rotation; its delivery contract is in test_conformance.py."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from logdriver import LogRecord, PartialInfo, batch_of
from logdriver.testing import open_stream, sample_records
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
    await stream.aclose()
    files = sorted(tmp_path.glob("*.log*"))  # noqa: ASYNC240 - a test reading its result
    assert [f.name.rsplit(".", 1)[-1] for f in files] == ["log", "1", "2"]
    assert all(f.stat().st_size < 1000 + 30 for f in files)  # past max-size by less than one line
    kept = b"".join(f.read_bytes() for f in reversed(files)).splitlines()
    assert kept == [r.line for r in records][-len(kept) :]  # the newest lines, in order

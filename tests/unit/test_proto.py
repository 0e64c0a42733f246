"""The checked-in generated code must match proto/entry.proto (run `make proto`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_schema(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            "entry.proto",
        ],
        check=True,
        cwd=ROOT,
    )
    for name in ("entry_pb2.py", "entry_pb2.pyi"):
        assert (tmp_path / name).read_text() == (ROOT / "logdriver" / "_proto" / name).read_text(), (
            f"{name} drifted: run make proto"
        )


def test_field_numbers_are_dockers() -> None:
    from logdriver._proto.entry_pb2 import LogEntry, PartialLogEntryMetadata

    fields = {f.name: f.number for f in LogEntry.DESCRIPTOR.fields}
    assert fields == {"source": 1, "time_nano": 2, "line": 3, "partial": 4, "partial_log_metadata": 5, "attrs": 6}
    meta = {f.name: f.number for f in PartialLogEntryMetadata.DESCRIPTOR.fields}
    assert meta == {"last": 1, "id": 2, "ordinal": 3}


def test_upb_backend_is_in_use() -> None:
    from google.protobuf.internal import api_implementation

    assert api_implementation.Type() == "upb"

"""The threat model (docs/security.md) stays current: every installed sink has its row,
and every test it names as a guard exists."""

from __future__ import annotations

import re
from pathlib import Path

from logdriver.__main__ import sink_classes

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()


def test_every_sink_has_its_row() -> None:
    sinks_table = DOC.split("## Sinks", 1)[1]
    rows = {line.split("|")[1].strip() for line in sinks_table.splitlines() if line.startswith("| ")}
    missing = set(sink_classes()) - {"discard"} - rows
    assert not missing, f"docs/security.md has no row for the sinks {sorted(missing)}"


def test_every_guard_it_names_exists() -> None:
    named = set(re.findall(r"`(test_[a-z_]+)`", DOC))
    found = {path.stem for path in (ROOT / "tests").rglob("test_*.py")}
    assert named, "the threat model names its tests"
    assert named <= found, f"docs/security.md names tests that do not exist: {sorted(named - found)}"

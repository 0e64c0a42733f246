"""Multiline and parse=json on the real engines, through the file sink: real traces (made
when the tests run) printed by a container between ordinary lines on both streams."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..traces import JSON_LINE, PRINTING_SCRIPT, RUNTIMES, expected_messages, mount_trace, trace
from .conftest import Plugin, docker, logs

OPTS = {"multiline-timeout": "10s", "parse": "json"}  # the stop sends events, not the timeout


def by_stream(records: list[dict[str, object]], stream: str) -> list[dict[str, object]]:
    return [r for r in records if r["stream"] == stream]


@pytest.mark.parametrize("runtime", [r for r in RUNTIMES if r != "ruby"])
def test_each_trace_is_one_record_and_every_other_line_alone(plugin: Plugin, tmp_path: Path, runtime: str) -> None:
    lines = trace(runtime)
    container = plugin.run(
        "sh", "-c", PRINTING_SCRIPT, opts={"multiline": runtime, **OPTS}, args=mount_trace(lines, tmp_path)
    )
    plugin.closing_counts(container, "file")
    records = plugin.file_records(container)
    for stream in ("stdout", "stderr"):
        mine = by_stream(records, stream)
        assert [r["message"] for r in mine] == expected_messages(lines, stream)
        assert [r.get("multiline") for r in mine if "\n" in str(r["message"])] == [{"lines": len(lines)}]
    parsed = next(r for r in records if r["message"] == "parsed")
    assert (parsed["level"], parsed["trace_id"], parsed["fields"]) == ("warn", "abc", {"user": JSON_LINE["user"]})


def test_docker_logs_stays_line_by_line_as_json_file_has_it(plugin: Plugin, tmp_path: Path) -> None:
    lines = trace("java")
    lines[0] = "java.lang.RuntimeException: " + "m" * 40_000  # a line Docker sends in 16 KiB pieces
    args = mount_trace(lines, tmp_path)
    ours = plugin.run("sh", "-c", PRINTING_SCRIPT, opts={"multiline": "java", **OPTS}, args=args)
    theirs = plugin.run("sh", "-c", PRINTING_SCRIPT, args=args, driver="json-file")
    assert logs(ours) == logs(theirs)
    plugin.closing_counts(ours, "file")
    records = plugin.file_records(ours)
    assert [r["message"] for r in by_stream(records, "stderr")] == expected_messages(lines, "stderr")


def test_a_container_that_stops_mid_event_ships_it(plugin: Plugin, tmp_path: Path) -> None:
    lines = trace("python")[:3]  # the traceback's first lines, then the container exits
    container = plugin.run(
        "sh",
        "-c",
        "cat /traces/trace >&2",
        opts={"multiline": "python", "multiline-timeout": "60s"},
        args=mount_trace(lines, tmp_path),
    )
    started = time.monotonic()
    plugin.closing_counts(container, "file")
    assert time.monotonic() - started < 30  # at the stop, not after the 60 s timeout
    assert [(r["message"], r["multiline"]) for r in plugin.file_records(container)] == [
        ("\n".join(lines), {"lines": 3})
    ]


def test_a_thousand_lines_a_second_with_two_traces_a_second(plugin: Plugin, tmp_path: Path) -> None:
    lines = trace("go")
    script = (
        "for s in 1 2 3 4 5 6; do seq 1 500; cat /traces/trace >&2; sleep 0.5; done; "
        "for s in 1 2 3 4 5 6; do cat /traces/trace; seq 1 500 >&2; sleep 0.5; done"
    )
    container = plugin.run("sh", "-c", script, opts={"multiline": "go"}, args=mount_trace(lines, tmp_path))
    plugin.closing_counts(container, "file")
    records = plugin.file_records(container)
    joined = "\n".join(lines)
    for stream in ("stdout", "stderr"):
        messages = [r["message"] for r in by_stream(records, stream)]
        assert messages.count(joined) == 6
        assert len(messages) == 6 * 500 + 6
        assert sorted(m for m in messages if m != joined) == sorted(str(n) for n in range(1, 501) for _ in range(6))


def test_a_bad_rule_fails_docker_run_and_a_catastrophic_one_stays_linear(plugin: Plugin, tmp_path: Path) -> None:
    result = docker(
        "run",
        "--rm",
        f"--log-driver={plugin.name}",
        "--log-opt",
        "multiline-start=(a",
        "logdriver-test",
        "true",
        check=False,
    )
    assert result.returncode != 0
    assert b"multiline-start" in result.stderr
    assert b"unclosed group" in result.stderr
    script = "echo aaaa; head -c 100000 /dev/zero | tr '\\0' a; echo b; echo next"
    started = time.monotonic()
    container = plugin.run("sh", "-c", script, opts={"multiline-start": "^(a+)+$"})
    plugin.closing_counts(container, "file")
    assert time.monotonic() - started < 60
    assert [r["message"] for r in plugin.file_records(container)] == ["aaaa\n" + "a" * 100_000 + "b\nnext"]

"""The processing stage on real stack traces, made by the runtimes when the tests run, and
on its limits, hostile rules and JSON lines; then through the Driver on real FIFOs."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from logdriver import ConfigError, LogBatch, LogRecord
from logdriver._native import Stage, json_records
from logdriver._records import batch_of
from logdriver.config.options import parse_log_opts, plugin_defaults

from ..traces import RUNTIMES, trace

ORDINARY = "an ordinary line {n} on {stream}"


def stage(**opts: str) -> Stage:
    processing = parse_log_opts(opts, plugin_defaults({})).processing
    assert processing is not None
    return processing.stage()


def rendered(batch: LogBatch) -> list[dict[str, Any]]:
    """The records as the file sink and Kafka write them."""
    return [orjson.loads(line) for line in json_records(batch, b"}\n").splitlines()]


def run(s: Stage, records: list[LogRecord], cuts: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Feed the records in batches cut at random places, then end the stream."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, len(records)), min(cuts, len(records) - 1)))
    out = []
    for start, stop in zip([0, *points], [*points, len(records)], strict=True):
        out += rendered(s.process(batch_of(records[start:stop]), 0.0))
    return out + rendered(s.finish(0.0))


def interleaved(lines: list[str], stream: str, other: str, start: int) -> list[LogRecord]:
    """``lines`` on ``stream`` with an ordinary line on ``other`` after each of them."""
    out = []
    for n, line in enumerate(lines):
        out.append(LogRecord(stream, start + 2 * n, line.encode()))
        out.append(LogRecord(other, start + 2 * n + 1, ORDINARY.format(n=n, stream=other).encode()))
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_real_trace_is_one_event_and_every_ordinary_line_alone(runtime: str) -> None:
    lines = trace(runtime)
    records = [LogRecord("stdout", 0, b"starting"), LogRecord("stderr", 1, b"starting too")]
    records += interleaved(lines, "stderr", "stdout", 10)  # the trace on stderr, stdout busy meanwhile
    records += interleaved(lines, "stdout", "stderr", 10_000)  # and the same on stdout
    records.append(LogRecord("stdout", 99_999, b"done"))
    for seed in range(3):
        out = run(stage(multiline=runtime), records, seed=seed)
        joined = "\n".join(lines)
        ordinary = {s: [ORDINARY.format(n=n, stream=s) for n in range(len(lines))] for s in ("stdout", "stderr")}
        assert [r["message"] for r in out if r["stream"] == "stderr"] == ["starting too", joined, *ordinary["stderr"]]
        assert [r["message"] for r in out if r["stream"] == "stdout"] == [
            "starting",
            *ordinary["stdout"],
            joined,
            "done",
        ]
        events = [r for r in out if "multiline" in r]
        assert [e["multiline"] for e in events] == [{"lines": len(lines)}] * 2, runtime


def test_a_stream_that_ends_mid_event_sends_it_whole_and_unmarked() -> None:
    lines = trace("java")[:5]
    out = run(stage(multiline="java"), [LogRecord("stderr", i, line.encode()) for i, line in enumerate(lines)])
    assert [r["message"] for r in out] == ["\n".join(lines)]
    assert out[0]["multiline"] == {"lines": 5}


def test_a_never_ending_event_is_cut_with_a_marker_and_nothing_is_lost() -> None:
    s = stage(**{"multiline-continue": r"^\s", "multiline-max-lines": "100", "multiline-max-bytes": "16k"})
    lines = [b"first"] + [b" %05d" % n for n in range(5000)]
    out = run(s, [LogRecord("stdout", n, line) for n, line in enumerate(lines)])
    assert "\n".join(r["message"] for r in out).encode() == b"\n".join(lines)
    assert [r["multiline"] for r in out[:-1]] == [{"lines": 100, "cut": "max-lines"}] * 50
    assert "multiline" not in out[-1]  # the last line alone: 5001 lines
    assert s.statistics()["multiline_cut"] == len(out) - 1
    bytes_cut = run(
        stage(**{"multiline-continue": r"^\s", "multiline-max-bytes": "16k"}),
        [LogRecord("stdout", 0, b"x")] + [LogRecord("stdout", n, b" " + b"y" * 999) for n in range(40)],
    )
    assert {r["multiline"].get("cut") for r in bytes_cut[:-1]} == {"max-bytes"}
    assert all(len(r["message"]) <= 16_000 for r in bytes_cut)


def test_rules_that_match_everything_or_nothing_are_bounded() -> None:
    lines = [LogRecord("stdout", n, b"line %d" % n) for n in range(3000)]
    everything_starts = run(stage(**{"multiline-start": "."}), lines)
    assert len(everything_starts) == 3000
    assert not any("multiline" in r for r in everything_starts)
    everything_continues = run(stage(**{"multiline-continue": ".*"}), lines)
    assert [r["multiline"]["lines"] for r in everything_continues] == [1000, 1000, 1000]
    nothing = run(stage(**{"multiline-start": "$^"}), lines)
    assert len(nothing) == 3000


def test_a_catastrophic_pattern_stays_linear() -> None:
    import time

    s = stage(**{"multiline-start": "^(a+)+$"})
    line = b"a" * 200_000 + b"b"
    started = time.process_time()
    out = run(s, [LogRecord("stdout", n, line) for n in range(20)])
    assert len(out) == 20
    assert time.process_time() - started < 2.0  # a backtracking engine would not finish


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"multiline": "cobol"}, "one of java, python, go, node, ruby, rust"),
        ({"multiline-start": "(unclosed"}, "unclosed group"),
        ({"multiline-continue": "(a{1000}){1000}"}, "size limit"),
        ({"multiline-start": "a" * 5000}, "longer than 4096"),
        ({"multiline": "java", "multiline-continue": "^x"}, "not both"),
        ({"multiline-timeout": "0s"}, "10ms to 60s"),
        ({"multiline-max-lines": "1"}, "10 to 100000"),
        ({"parse": "yaml"}, "json"),
    ],
)
def test_bad_rules_fail_docker_run_with_the_reason(opts: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_log_opts(opts, plugin_defaults({}))


def test_json_lines_become_fields_and_are_never_merged() -> None:
    line = {"time": "2026-12-03T10:00:00.5Z", "level": "error", "msg": "failed", "trace_id": "ab", "user": {"id": 7}}
    records = [
        LogRecord("stdout", 1, b"java.lang.IllegalStateException: x"),
        LogRecord("stdout", 2, orjson.dumps(line)),
        LogRecord("stdout", 3, b"\tat T.main(T.java:1)"),
        LogRecord("stdout", 4, b"not json"),
        LogRecord("stdout", 5, b'{"broken": '),
    ]
    s = stage(multiline="java", parse="json")
    out = run(s, records, cuts=1)
    assert [r["message"] for r in out] == [
        "java.lang.IllegalStateException: x",
        "failed",
        "\tat T.main(T.java:1)",
        "not json",
        '{"broken": ',
    ]
    parsed = out[1]
    assert parsed["time"] == "2026-12-03T10:00:00.500000000Z"
    assert (parsed["level"], parsed["trace_id"], parsed["fields"]) == ("error", "ab", {"user": {"id": 7}})
    stats = s.statistics()
    assert (stats["json_parsed"], stats["json_unparsed"]) == (1, 4)


def test_hostile_json_is_shipped_unchanged_and_counted() -> None:
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    wide = orjson.dumps({f"k{n}": n for n in range(1000)})
    huge = orjson.dumps({"blob": "x" * 100_000})
    s = stage(parse="json")
    out = run(s, [LogRecord("stdout", n, line) for n, line in enumerate([deep, wide, huge])], cuts=1)
    assert [r["message"].encode() for r in out] == [deep, wide, huge]
    assert s.statistics()["json_over_limit"] == 3


def test_events_survive_the_spool_and_every_batch_operation() -> None:
    s = stage(multiline="java", parse="json")
    out = s.process(
        batch_of(
            [
                LogRecord("stdout", 1, b"java.lang.Error: x"),
                LogRecord("stdout", 2, b"\tat A.a(A.java:1)"),
                LogRecord("stdout", 3, b'{"msg":"hi","k":1}'),
            ]
        ),
        0.0,
    )
    whole = LogBatch.concat([out, s.finish(0.0)])
    expected = rendered(whole)
    assert expected[0]["multiline"] == {"lines": 2}
    assert expected[1]["fields"] == {"k": 1}
    assert rendered(LogBatch.from_frames(whole.to_frames())) == expected
    assert rendered(whole.select([1, 0])) == [expected[1], expected[0]]
    assert rendered(whole.slice(0, 1)) == expected[:1]

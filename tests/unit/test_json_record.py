"""One JSON record: the file sink's lines, Kafka's values and the dead letters are the same
record for the same line (one renderer, ``native/lines/src/record.rs``)."""

from __future__ import annotations

import orjson

from logdriver import LogRecord, PartialInfo, batch_of
from logdriver.delivery.dead_letters import _json_lines
from logdriver_sinks.file._render import json_lines
from logdriver_sinks.kafka._render import messages

LINES = [
    LogRecord("stdout", 1_764_340_000_123_456_789, b'plain "quoted" \\ \t\x01'),
    LogRecord("stderr", -1, b"before 1970"),
    LogRecord("stdout", 5, b"invalid \xff utf-8", PartialInfo("p1", 3, True)),
]


def test_file_kafka_and_dead_letters_write_one_record() -> None:
    batch = batch_of(LINES)
    suffix = b',"container_id":"c"}'
    file_lines = json_lines(batch.columns(), suffix + b"\n").splitlines()
    kafka_values = [value for value, _, _ in messages(batch.columns(), suffix, False)]
    dead = _json_lines(batch, "c", "kafka", ["refused"] * len(LINES)).splitlines()
    assert file_lines == kafka_values
    for line, letter in zip(file_lines, dead, strict=True):
        assert orjson.loads(letter) == {**orjson.loads(line), "sink": "kafka", "reason": "refused"}
    first, _, third = (orjson.loads(line) for line in file_lines)
    assert list(first) == ["time", "stream", "message", "container_id"]
    assert first["time"] == "2025-11-28T14:26:40.123456789Z"
    assert third["message"] == "invalid \ufffd utf-8"
    assert third["partial"] == {"id": "p1", "ordinal": 3, "last": True}


def test_dead_letters_keep_each_lines_reason() -> None:
    batch = batch_of(LINES)
    dead = _json_lines(batch, "c", "es", ["a", "b", "b"]).splitlines()
    assert [orjson.loads(line)["reason"] for line in dead] == ["a", "b", "b"]

"""The Fluentd sink's forward entries in plain Python: the reference ``sinks/fluentd/native``
must match (byte for byte when no extra replaces a record field; the same record when one does)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgpack

from logdriver import LogRecord
from logdriver_sinks.fluentd._forward import event_time


def docker_record(
    record: LogRecord, container_id: str, container_name: str, extras: Mapping[str, str]
) -> dict[str, str]:
    """The record Docker's fluentd driver sends: same keys, string values, extras last."""
    out = {
        "container_id": container_id,
        "container_name": container_name,
        "source": record.source,
        "log": record.line.decode("utf-8", "replace"),
    }
    if record.partial is not None:
        out["partial_message"] = "true"
        out["partial_id"] = record.partial.id
        out["partial_ordinal"] = str(record.partial.ordinal)
        out["partial_last"] = "true" if record.partial.last else "false"
    out.update(extras)
    return out


def pack_entries(
    records: Iterable[LogRecord],
    container_id: str,
    container_name: str,
    extras: Mapping[str, str],
    sub_second: bool = True,
) -> tuple[bytes, int]:
    """Concatenated ``[time, record]`` entries and their count."""
    packer = msgpack.Packer(use_bin_type=True)
    parts = []
    for record in records:
        when = event_time(record.time_nano) if sub_second else record.time_nano // 1_000_000_000
        parts.append(packer.pack([when, docker_record(record, container_id, container_name, extras)]))
    return b"".join(parts), len(parts)

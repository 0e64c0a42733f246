"""The Rust hot path must agree with the pure-Python reference on any input."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from logdriver import LogRecord, PartialInfo, batch_of, records_of
from logdriver._native import FrameReader
from logdriver.testing import encode_entry, encode_frame

from ..reference.entries import EntryDecoder
from ..reference.framing import FrameDecoder

sources = st.sampled_from(["stdout", "stderr", "", "other"])
partials = st.one_of(
    st.none(),
    # More ids than MAX_OPEN_LINES, so the cap on open lines is exercised too.
    st.builds(PartialInfo, st.sampled_from(["", *"abcdefghij", "c" * 64]), st.integers(1, 5), st.booleans()),
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


# Protobuf corners where a hand-written decoder and upb can part ways: field numbers up to and
# past 2^29, every wire type (groups, nested and mismatched), 10- and 11-byte varints, keys in
# too many bytes, LogAttr (field 6) bodies that are or are not messages with UTF-8 strings.
keys = st.builds(
    lambda field, wire: _varint(field << 3 | wire),
    st.sampled_from([1, 2, 3, 4, 5, 6, 7, 2**29 - 1, 2**29]),
    st.integers(0, 7),
)
long_varints = st.builds(lambda n, last: b"\xff" * n + bytes([last]), st.integers(8, 10), st.integers(0, 0x7F))
padded_keys = st.builds(lambda field: bytes([field << 3 | 0x80]) + b"\x80" * 4 + b"\x00", st.integers(1, 15))
attrs = st.builds(
    lambda body: b"\x32" + _varint(len(body)) + body,
    st.one_of(st.binary(max_size=6), st.builds(lambda v: b"\x0a" + _varint(len(v)) + v, st.binary(max_size=4))),
)
pieces = st.one_of(keys, long_varints, padded_keys, attrs, st.sampled_from([b"\x33", b"\x34", b"\x3c", b"\x43\x44"]))
corners = st.lists(pieces, max_size=6).map(b"".join)
bodies = st.one_of(
    st.builds(encode_entry, sources, st.integers(-(2**63), 2**63 - 1), st.binary(max_size=64), partials),
    st.binary(max_size=24),  # garbage bodies: decode errors, counted alike
    st.builds(lambda a, b: a + b, st.builds(encode_entry, sources, st.integers(0, 9), st.binary(max_size=8)), corners),
)
frames = st.one_of(bodies.map(encode_frame), st.binary(max_size=12))  # plus stray bytes between frames


def reference(data: bytes, cuts: list[int], max_line: int) -> tuple[bytes, list[LogRecord], dict[str, int]]:
    framer, entries = FrameDecoder(max_frame_size=4096), EntryDecoder(max_line)
    raw, records = b"", []
    for chunk in split(data, cuts):
        framer.receive_data(chunk)
        got = framer.next_frames()
        raw += got.raw
        records += entries.decode(got.bodies)
    framer.receive_data(b"")
    framer.next_frames()
    records += entries.flush()
    stats = {**vars_of(framer.statistics), **vars_of(entries.statistics)}
    return raw, records, stats


def native(data: bytes, cuts: list[int], max_line: int) -> tuple[bytes, list[LogRecord], dict[str, int]]:
    reader = FrameReader(4096, max_line)
    raw, records = b"", []
    for chunk in split(data, cuts):
        got_raw, batch = reader.feed(chunk)
        raw += got_raw
        records += records_of(batch)
    records += records_of(reader.finish())
    return raw, records, reader.statistics()


def vars_of(stats: object) -> dict[str, int]:
    return {name: getattr(stats, name) for name in stats.__slots__}  # type: ignore[attr-defined]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@given(st.lists(frames, max_size=40), st.lists(st.integers(min_value=0), max_size=12), st.integers(1, 200))
def test_native_matches_reference(parts: list[bytes], cuts: list[int], max_line: int) -> None:
    data = b"".join(parts)
    assert native(data, cuts, max_line) == reference(data, cuts, max_line)


def test_oversize_header_resync_matches() -> None:
    body = encode_entry("stdout", 7, b"ok")
    data = b"\xff\xff\xff\xff garbage " + encode_frame(body) * 3
    assert native(data, [3, 20], 100) == reference(data, [3, 20], 100)


def test_batch_select_and_sizes() -> None:
    batch = batch_of([LogRecord("stdout", i, b"x" * i) for i in range(5)])
    assert len(batch) == 5
    assert batch.nbytes == 10
    assert [r.time_nano for r in records_of(batch.select([4, 1]))] == [4, 1]
    lines, extras, index = batch.columns()
    assert lines is batch
    assert bytes(memoryview(batch)) == b"xxxxxxxxxx"  # the lines back to back, lent without a copy
    assert extras == b""  # no partial ids or unusual sources here
    assert len(index) == 5 * 48

"""Rejoining Docker's 16 KiB partial chunks (interleaved streams, caps, EOF)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from logdriver import LogRecord, PartialInfo
from logdriver.testing import encode_entry

from ..reference.entries import EntryDecoder

CHUNK = 16384


def docker_chunks(source: str, t: int, line: bytes, pid: str, terminated: bool = True) -> list[bytes]:
    """What dockerd's copier writes for one line (copier.go)."""
    if len(line) < CHUNK and terminated:
        return [encode_entry(source, t, line)]
    pieces = [line[i : i + CHUNK] for i in range(0, len(line), CHUNK)] or [b""]
    out = []
    full = [p for p in pieces if len(p) == CHUNK]
    rest = line[len(full) * CHUNK :]
    for ordinal, piece in enumerate(full, 1):
        out.append(encode_entry(source, t, piece, PartialInfo(pid, ordinal, False)))
    if terminated:
        out.append(encode_entry(source, t, rest, PartialInfo(pid, len(full) + 1, True)))
    elif rest:
        out.append(encode_entry(source, t, rest, PartialInfo(pid, len(full) + 1, False)))
    return out


def test_plain_lines_pass_through() -> None:
    decoder = EntryDecoder()
    bodies = [encode_entry("stdout", 1, b"a"), encode_entry("stderr", 2, b""), encode_entry("stdout", 3, b"c")]
    assert decoder.decode(bodies) == [
        LogRecord("stdout", 1, b"a"),
        LogRecord("stderr", 2, b""),
        LogRecord("stdout", 3, b"c"),
    ]


def test_exact_16k_line_has_an_empty_last_chunk() -> None:
    decoder = EntryDecoder()
    bodies = docker_chunks("stdout", 5, b"x" * CHUNK, "p1")
    assert len(bodies) == 2
    assert decoder.decode(bodies) == [LogRecord("stdout", 5, b"x" * CHUNK)]


@given(st.integers(min_value=0, max_value=5 * CHUNK), st.integers(min_value=0, max_value=3 * CHUNK), st.randoms())
def test_interleaved_stdout_and_stderr_lines_rejoin(out_len: int, err_len: int, rnd: object) -> None:
    out = docker_chunks("stdout", 1, b"o" * out_len, "a")
    err = docker_chunks("stderr", 2, b"e" * err_len, "b")
    merged: list[bytes] = []
    while out or err:  # interleave keeping each stream's order
        src = out if (out and (not err or rnd.random() < 0.5)) else err  # type: ignore[attr-defined]
        merged.append(src.pop(0))
    records = EntryDecoder().decode(merged)
    assert sorted((r.source, r.line, r.partial) for r in records) == [
        ("stderr", b"e" * err_len, None),
        ("stdout", b"o" * out_len, None),
    ]


def test_line_over_the_cap_is_cut_into_pieces_nothing_lost() -> None:
    decoder = EntryDecoder(max_line_size=2 * CHUNK)
    line = bytes(range(256)) * (5 * CHUNK // 256)
    records = decoder.decode(docker_chunks("stdout", 9, line, "big"))
    assert b"".join(r.line for r in records) == line
    assert [r.partial for r in records] == [
        PartialInfo("big", 1, False),
        PartialInfo("big", 2, False),
        PartialInfo("big", 3, True),
    ]
    assert decoder.open_bytes == 0
    assert decoder.statistics.lines_cut == 2


def test_unterminated_line_is_flushed_at_eof() -> None:
    decoder = EntryDecoder()
    assert decoder.decode(docker_chunks("stdout", 7, b"no newline", "u", terminated=False)) == []
    assert decoder.flush() == [LogRecord("stdout", 7, b"no newline", PartialInfo("u", 1, False))]
    assert decoder.flush() == []


def test_garbage_body_is_counted_and_skipped() -> None:
    decoder = EntryDecoder()
    records = decoder.decode([b"\xff\xff\xff", encode_entry("stdout", 1, b"ok")])
    assert records == [LogRecord("stdout", 1, b"ok")]
    assert decoder.statistics.decode_errors == 1

"""FrameDecoder: any split of the bytes, oversize headers, truncation at EOF."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from logdriver.testing import encode_entry, encode_frame

from ..reference.framing import FrameDecoder

entries = st.builds(
    encode_entry,
    st.sampled_from(["stdout", "stderr"]),
    st.integers(min_value=0, max_value=2**62),
    st.binary(max_size=300),
)


def feed(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> tuple[list[bytes], bytes]:
    bodies: list[bytes] = []
    raw = b""
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            decoder.receive_data(data[start:point])
            frames = decoder.next_frames()
            bodies += frames.bodies
            raw += frames.raw
            start = point
    decoder.receive_data(b"")
    frames = decoder.next_frames()
    return bodies + frames.bodies, raw + frames.raw


@given(st.lists(entries, max_size=30), st.lists(st.integers(min_value=0), max_size=40))
def test_any_split_yields_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode_frame(b) for b in bodies)
    decoder = FrameDecoder()
    got, raw = feed(decoder, data, cuts)
    assert got == bodies
    assert raw == data  # the store receives exactly the bytes of whole frames
    assert decoder.statistics.frames == len(bodies)
    assert decoder.statistics.truncated_bytes_at_eof == 0


@given(st.lists(entries, min_size=1, max_size=10), st.integers(min_value=1, max_value=50))
def test_truncated_last_frame_is_counted_not_returned(bodies: list[bytes], cut: int) -> None:
    data = b"".join(encode_frame(b) for b in bodies)
    cut = min(cut, len(encode_frame(bodies[-1])) - 1)
    decoder = FrameDecoder()
    got, _ = feed(decoder, data[:-cut], [])
    assert got == bodies[:-1]
    assert decoder.statistics.truncated_bytes_at_eof == len(encode_frame(bodies[-1])) - cut


@given(
    st.lists(entries, min_size=1, max_size=10),
    st.binary(min_size=1, max_size=64),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_oversize_header_resyncs_on_the_next_frame(bodies: list[bytes], junk: bytes, cuts: list[int]) -> None:
    """A writer that died mid-frame leaves garbage; decoding resumes at the next real frame."""
    bad = b"\xff\xff\xff\xff" + junk.replace(b"\x0a\x06std", b"")
    data = bad + b"".join(encode_frame(b) for b in bodies)
    decoder = FrameDecoder(max_frame_size=1 << 20)
    got, raw = feed(decoder, data, cuts)
    assert got == bodies
    assert raw == data[len(bad) :]
    assert decoder.statistics.oversize_frames >= 1
    assert decoder.statistics.skipped_bytes >= 1


def test_a_huge_header_never_allocates() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.receive_data(b"\x7f\xff\xff\xff" + b"x" * 100)
    frames = decoder.next_frames()
    assert frames.bodies == []
    assert decoder.buffered < 16  # only the bytes that might start a marker are kept
    assert decoder.statistics.oversize_frames == 1

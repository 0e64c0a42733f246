"""A destination's reply is read within a bound, raw and decoded (issue 30, finding 2).

A 1,827-byte reply with ``Content-Encoding: gzip, gzip`` inflated to 1 GiB: 2.1 GB of
RSS through the OTLP sink and 3.1 GB through the Elasticsearch transport, at a 64 MiB
budget. ``ReplyDecoder`` is tested alone, then both sinks against fakes (named fakes:
a real destination never answers this way) that answer with bombs.
"""

from __future__ import annotations

import gzip
import resource
import zlib
from pathlib import Path

import pytest
import trio

from logdriver import batch_of
from logdriver.replies import ReplyDecoder, ReplyRefused
from logdriver.testing import close_clients, open_pipeline, running, sample_records
from logdriver_sinks.elasticsearch import ElasticsearchSink
from logdriver_sinks.otlp import MAX_REPLY, OtlpSink

from ..fake_bulk import FakeBulkServer
from ..fakes import FakeHttpEndpoint
from .test_elasticsearch import lines, stream_for

BOMB_SIZE = 256 << 20  # decoded bytes of each bomb


def gzip_of_zeros(size: int) -> bytes:
    """gzip of ``size`` zero bytes, made without holding them."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [deflate.compress(chunk) for _ in range(size >> 20)]
    return b"".join([*parts, deflate.flush()])


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_of_zeros(BOMB_SIZE)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_identity_gzip_and_deflate_decode_fed_in_any_pieces() -> None:
    body = b"x" * 100_000
    for encoding, raw in [
        ("", body),
        ("identity", body),
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
    ]:
        decoder = ReplyDecoder(encoding, 1 << 20)
        for at in range(0, len(raw), 7):
            decoder.feed(raw[at : at + 7])
        assert decoder.finish() == body, encoding


def test_stacked_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(ReplyRefused, match="stacked"):
        ReplyDecoder("gzip, gzip", 1 << 20)
    with pytest.raises(ReplyRefused, match="unknown encoding"):
        ReplyDecoder("br", 1 << 20)


def test_a_bomb_stops_at_the_bound_without_inflating_the_rest(bomb: bytes) -> None:
    decoder = ReplyDecoder("gzip", 1 << 20)
    before = peak_rss()
    with pytest.raises(ReplyRefused, match="over 1048576 bytes"):
        decoder.feed(bomb)
    assert len(decoder.finish()) <= (1 << 20) + 1
    assert peak_rss() - before < 64 << 20


def test_the_raw_bytes_are_bounded_too() -> None:
    decoder = ReplyDecoder("", 1000)
    decoder.feed(b"x" * 1000)
    with pytest.raises(ReplyRefused):
        decoder.feed(b"x")


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip"])
async def test_otlp_reads_a_bombs_first_bytes_only(tmp_path: Path, bomb: bytes, encoding: str) -> None:
    body = gzip.compress(bomb) if encoding == "gzip, gzip" else bomb
    endpoint = FakeHttpEndpoint([(200, {"content-encoding": encoding}, body, 0.0)])
    sink = OtlpSink()
    before = peak_rss()
    try:
        pipeline = open_pipeline(sink, {"otlp-endpoint": endpoint.url, "otlp-timeout": "30s"}, state_dir=tmp_path)
        async with running(pipeline, flush_timeout=60):
            await pipeline.put(batch_of(sample_records(5)))
        # A 2xx: delivered, its body unreadable (zeros are no ExportLogsServiceResponse).
        assert (pipeline.counters.lines_out, pipeline.counters.dead_lettered) == (5, 0)
    finally:
        await close_clients(sink)
        endpoint.close()
    assert peak_rss() - before < 64 << 20 + MAX_REPLY


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip"])
async def test_elasticsearch_refuses_a_bomb_and_retries(
    nursery: trio.Nursery, bomb: bytes, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeBulkServer()
    await nursery.start(server.serve)
    server.reply_bomb = (encoding, gzip.compress(bomb) if encoding == "gzip, gzip" else bomb)
    sink = ElasticsearchSink()
    stream = stream_for({"es-url": server.url}, sink)
    before = peak_rss()
    result = await stream.send_batch(batch_of(lines(4)))
    assert list(result.retry) == [0, 1, 2, 3]  # failed, not delivered: the pipeline tries again
    assert "reply refused" in caplog.text
    assert peak_rss() - before < 64 << 20
    server.reply_bomb = None
    assert not (await stream.send_batch(batch_of(lines(4)))).retry
    await close_clients(sink)


def test_an_otlp_reply_of_many_fields_is_not_walked_field_by_field() -> None:
    """Finding 10: a 1 MiB reply of one-byte fields cost 0.58 s of Python on the event loop.
    A real reply has a field or two at each level; more makes it unreadable, at once."""
    from logdriver_sinks.otlp._export import judge

    many = b"\x08\x01" * (MAX_REPLY // 2)
    assert judge(200, many, {}, 5).unreadable
    assert judge(500, many, {"content-type": "application/x-protobuf"}, 5).rejected == 5

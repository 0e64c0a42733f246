"""Sans-IO forward protocol: encoding checked against fluent-logger, replies, handshake."""

from __future__ import annotations

import gzip
import hashlib
from io import BytesIO

import msgpack
import pytest
from fluent import sender as fluent_sender
from hypothesis import given, settings
from hypothesis import strategies as st

from logdriver import LogRecord, PartialInfo, batch_of
from logdriver_sinks.fluentd._forward import (
    Ack,
    EntryEncoder,
    ForwardProtocolError,
    Helo,
    Pong,
    ReplyReader,
    check_pong,
    event_time,
    packed_forward,
    ping,
)

from .fluentd_reference import pack_entries

ID = "a" * 64


def test_event_time_matches_fluent_logger() -> None:
    ours = msgpack.packb(event_time(1_764_338_556_500_000_000))
    reference = msgpack.packb(fluent_sender.EventTime(1764338556.5))
    assert ours == reference
    assert ours[:2] == b"\xd7\x00"  # fixext8, type 0


def test_entries_carry_dockers_fluentd_record() -> None:
    records = [
        LogRecord("stdout", 1_764_338_556_000_000_123, b"hello"),
        LogRecord("stderr", 2_000_000_000, b"x" * 10, PartialInfo("p1", 2, True)),
    ]
    entries, size = pack_entries(records, ID, "/web", {"team": "core"})
    assert size == 2
    decoder = msgpack.Unpacker(raw=False)
    decoder.feed(entries)
    decoded = list(decoder)
    assert decoded[0][1] == {
        "container_id": ID,
        "container_name": "/web",
        "source": "stdout",
        "log": "hello",
        "team": "core",
    }
    assert decoded[0][0] == msgpack.ExtType(0, (1764338556).to_bytes(4, "big") + (123).to_bytes(4, "big"))
    assert decoded[1][1]["partial_message"] == "true"
    assert decoded[1][1]["partial_ordinal"] == "2"
    assert decoded[1][1]["partial_last"] == "true"
    seconds, _ = pack_entries(records[:1], ID, "/web", {}, sub_second=False)
    decoder.feed(seconds)
    assert next(decoder)[0] == 1764338556  # integer seconds when sub-second precision is off


@pytest.mark.parametrize("compress", [False, True])
def test_packed_forward_shape(compress: bool) -> None:
    entries, size = pack_entries([LogRecord("stdout", 1, b"a")], ID, "/web", {})
    message = msgpack.unpackb(packed_forward("docker.web", entries, size, "Y2h1bms=", compress), raw=False)
    tag, payload, option = message
    assert tag == "docker.web"
    assert isinstance(payload, bytes)  # bin, as the spec asks of clients
    assert (gzip.decompress(payload) if compress else payload) == entries
    assert option == {"size": 1, "chunk": "Y2h1bms=", **({"compressed": "gzip"} if compress else {})}


def test_replies_split_anywhere() -> None:
    reader = ReplyReader()
    wire = msgpack.packb({"ack": "abc"}) + msgpack.packb(["HELO", {"nonce": b"n" * 16, "auth": b"", "keepalive": True}])
    replies = []
    for byte in wire:
        replies += reader.receive_data(bytes([byte]))
    assert replies == [Ack("abc"), Helo(b"n" * 16, b"", True)]
    with pytest.raises(ForwardProtocolError):
        reader.receive_data(msgpack.packb({"nope": 1}))


def test_handshake_digests() -> None:
    helo = Helo(nonce=b"N" * 16, auth_salt=b"S" * 16, keepalive=True)
    message, salt = ping(helo, "client-host", "secret", salt=b"salty")
    kind, hostname, sent_salt, digest, username, password_digest = msgpack.unpackb(message, raw=False)
    assert (kind, hostname, sent_salt, username, password_digest) == ("PING", "client-host", b"salty", "", "")
    assert digest == hashlib.sha512(b"salty" + b"client-host" + b"N" * 16 + b"secret").hexdigest()
    server_digest = hashlib.sha512(b"salty" + b"server-host" + b"N" * 16 + b"secret").hexdigest()
    check_pong(Pong(True, "", "server-host", server_digest), helo, salt, "secret", "client-host")
    with pytest.raises(ForwardProtocolError, match="digest"):
        check_pong(Pong(True, "", "server-host", server_digest), helo, salt, "wrong key", "client-host")
    with pytest.raises(ForwardProtocolError, match="refused"):
        check_pong(Pong(False, "shared key mismatch", "server-host", ""), helo, salt, "secret", "client-host")


_records = st.lists(
    st.builds(
        LogRecord,
        st.sampled_from(["stdout", "stderr"]),
        st.integers(0, 2**32 * 10**9 - 1),
        st.binary(max_size=300) | st.text(max_size=70_000).map(str.encode),
        st.none() | st.builds(PartialInfo, st.text(max_size=40), st.integers(-(2**31), 2**31 - 1), st.booleans()),
    ),
    max_size=20,
)
_extras = st.dictionaries(st.text(max_size=40), st.text(max_size=300), max_size=20)


@settings(max_examples=300, deadline=None)
@given(_records, _extras, st.booleans(), st.text(max_size=80))
def test_native_encoder_is_byte_identical_to_the_reference(
    records: list[LogRecord], extras: dict[str, str], sub_second: bool, name: str
) -> None:
    """The Rust encoder the sink uses against the Python reference (itself checked against
    fluent-logger): lossy UTF-8, long strings, big maps; byte for byte, except that an extra
    named like a record field moves that field to the end (a map's order carries no meaning:
    Docker's own driver sends a Go map, in random order), so there the records are compared."""
    native = EntryEncoder(ID, name, extras, sub_second).encode(batch_of(records))
    reference = pack_entries(records, ID, name, extras, sub_second)[0]
    if not set(extras) & RECORD_FIELDS:
        assert native == reference
    assert list(msgpack.Unpacker(BytesIO(native), raw=False)) == list(msgpack.Unpacker(BytesIO(reference), raw=False))


RECORD_FIELDS = frozenset(
    {
        "container_id",
        "container_name",
        "source",
        "log",
        "partial_message",
        "partial_id",
        "partial_ordinal",
        "partial_last",
    }
)


@given(_records, st.sets(st.sampled_from(sorted(RECORD_FIELDS)), min_size=1), st.booleans())
def test_an_extra_replaces_the_record_field_of_its_name(
    records: list[LogRecord], names: set[str], sub_second: bool
) -> None:
    extras = {name: f"extra {name}" for name in names}
    native = EntryEncoder(ID, "/web", extras, sub_second).encode(batch_of(records))
    reference = pack_entries(records, ID, "/web", extras, sub_second)[0]
    assert list(msgpack.Unpacker(BytesIO(native), raw=False)) == list(msgpack.Unpacker(BytesIO(reference), raw=False))


def test_a_reply_of_a_million_tiny_objects_is_refused() -> None:
    """Issue 30: a reply is decoded into Python objects on the event loop; 1 MiB of one-byte
    empty arrays would have been a million lists. A real ack is about 30 bytes."""
    reader = ReplyReader()
    with pytest.raises(ForwardProtocolError, match="too large"):
        reader.receive_data(b"\x90" * (1 << 20))

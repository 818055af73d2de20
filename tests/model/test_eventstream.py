"""The AWS event-stream frame decoder: every header type, both CRCs, cut frames, bad input."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest
from botocore.eventstream import EventStreamBuffer

from chronos.errors import StreamProtocolError
from chronos.model._eventstream import EventStreamDecoder
from tests.model.eventstream_frames import event, raw_frame
from tests.model.recordings import load_all

BEDROCK_BODIES = [r.body for r in load_all() if r.api == "converse-stream" and r.status < 400]


def _every_type_frame() -> bytes:
    when = 1_700_000_000_123
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    block = b"".join([
        b"\x04true\x00", b"\x05false\x01", b"\x04byte\x02\xff", b"\x05short\x03\x01\x00",
        b"\x03int\x04" + struct.pack(">i", -7), b"\x04long\x05" + struct.pack(">q", 2**40),
        b"\x05bytes\x06\x00\x02\x00\x01", b"\x03str\x07\x00\x03h\xc3\xa9",
        b"\x04time\x08" + struct.pack(">q", when), b"\x04uuid\x09" + ident.bytes,
    ])
    return raw_frame(block, b'{"x":1}')


def test_every_header_type_decodes() -> None:
    [message] = EventStreamDecoder().feed(_every_type_frame())
    assert dict(message.headers) == {
        "true": True, "false": False, "byte": -1, "short": 256, "int": -7, "long": 2**40,
        "bytes": b"\x00\x01", "str": "hé",
        "time": datetime.fromtimestamp(1_700_000_000.123, UTC),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    assert message.payload == b'{"x":1}'


@pytest.mark.parametrize("body", BEDROCK_BODIES)
def test_recorded_bodies_decode_as_botocore_decodes_them(body: bytes) -> None:
    theirs = EventStreamBuffer()
    theirs.add_data(body)
    expected = [(m.headers, m.payload) for m in theirs]
    assert [(dict(m.headers), m.payload) for m in EventStreamDecoder().feed(body)] == expected
    decoder = EventStreamDecoder()
    one_byte_at_a_time = [m for i in range(len(body)) for m in decoder.feed(body[i : i + 1])]
    assert [(dict(m.headers), m.payload) for m in one_byte_at_a_time] == expected
    assert decoder.flush() == []


def _flip(body: bytes, position: int) -> bytes:
    return body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]


@pytest.mark.parametrize(("position", "problem"), [(3, "prelude CRC"), (9, "prelude CRC"),
                                                   (20, "message CRC"), (-2, "message CRC")])
def test_a_flipped_bit_is_a_protocol_error(position: int, problem: str) -> None:
    good = event("messageStart", {"role": "assistant"})
    bad = _flip(good, position % len(good))
    with pytest.raises(StreamProtocolError, match=problem):
        EventStreamDecoder(provider="bedrock").feed(bad)


def test_messages_before_a_bad_frame_are_delivered_then_the_error() -> None:
    good = event("messageStart", {"role": "assistant"})
    decoder = EventStreamDecoder()
    messages = decoder.feed(good + _flip(good, 20))
    assert [m.payload for m in messages] == [b'{"role":"assistant"}']
    with pytest.raises(StreamProtocolError):
        decoder.flush()
    with pytest.raises(StreamProtocolError):
        decoder.feed(good)


def test_a_body_that_ends_inside_a_frame_is_truncated() -> None:
    good = event("messageStart", {"role": "assistant"})
    decoder = EventStreamDecoder()
    assert decoder.feed(good[:-1]) == []
    with pytest.raises(StreamProtocolError, match="truncated"):
        decoder.flush()


@pytest.mark.parametrize(("total", "headers"), [(15, 0), (100, 90), (2**31, 10), (40, 2**20)])
def test_impossible_lengths_are_refused_before_waiting_for_them(total: int, headers: int) -> None:
    prelude = struct.pack(">II", total, headers)
    with pytest.raises(StreamProtocolError, match="impossible lengths"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


@pytest.mark.parametrize("block", [b"\x05abc", b"\x01a\x07\x00\x09xy", b"\x01a\x0b",
                                   b"\x01a\x09ab", b"\x02\xff\xfe\x07\x00\x00"])
def test_malformed_headers_are_protocol_errors(block: bytes) -> None:
    with pytest.raises(StreamProtocolError, match="header"):
        EventStreamDecoder().feed(raw_frame(block, b""))


def test_header_blocks_are_shared_read_only() -> None:
    payloads = [event("contentBlockDelta", {"delta": {"text": str(i)}}) for i in range(3)]
    messages = EventStreamDecoder().feed(b"".join(payloads))
    assert messages[0].headers is messages[2].headers
    with pytest.raises(TypeError):
        messages[0].headers[":event-type"] = "x"  # type: ignore[index]

"""Property tests: whatever is encoded comes back out of a spec-following SSE decoder.

`test_wire.py` checks one message at a time. Here whole streams are encoded (messages,
published event frames, comments, heartbeats and `retry:` lines interleaved), cut at random
byte positions (inside UTF-8 characters, between CR and LF) and decoded twice: by the spec
decoder in `sse_spec.py` and by chronos's own incremental `SSEDecoder`. Both must see exactly
the messages sent, in order, with the right `Last-Event-ID`, and nothing else: no value,
however hostile, may end a field early and smuggle in another.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chronos.model._decode import SSEDecoder
from chronos.stream import Event
from chronos.stream._wire import (
    HEARTBEAT,
    encode_comment,
    encode_message,
    encode_retry,
    event_frame,
)
from tests.stream.sse_spec import Message, SpecDecoder

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Line breaks, NUL, and text that looks like SSE fields are what an injection needs.
_HOSTILE = st.sampled_from(
    ["\n", "\r", "\r\n", "\n\n", "\r\r", "\0", ":", "data: x", "id: 9-9", "event: evil",
     "retry: 1", "\ufeff", "\u2028", "\x85", "é", "\U0001f916", " "]
)
_PLAIN = st.text(st.characters(exclude_categories=("Cs",)))
text = st.lists(_PLAIN | _HOSTILE, max_size=12).map("".join)
field = text.filter(lambda s: not any(c in s for c in "\r\n\0"))


def _normalized(data: str) -> str:
    return data.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Sent:
    """One message put on the wire, and what a client must see for it."""

    frame: bytes
    type: str
    data: str
    last_event_id: str


@st.composite
def _messages(draw: st.DrawFn, last_id: str) -> Sent:
    kind = draw(st.sampled_from(["message", "frame", "named_frame"]))
    if kind == "message":
        data = draw(text)
        id_ = draw(st.none() | field)
        event = draw(st.none() | field)
        return Sent(encode_message(data, id=id_, event=event), event or "message",
                    _normalized(data), last_id if id_ is None else id_)
    payload = draw(st.none() | st.integers(-(2**63), 2**64 - 1) | text
                   | st.dictionaries(text, text, max_size=3))
    ms, seq = draw(st.integers(0, 2**63)), draw(st.integers(0, 2**20))
    event = Event(draw(field), payload, id=f"{ms}-{seq}", topic=draw(field))
    named = kind == "named_frame"
    return Sent(event_frame(event, named=named), (event.type or "message") if named else "message",
                event.json().decode(), f"{ms}-{seq}")


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[Sent]]:
    """A stream as a server sends it: a preamble, then messages with noise between them."""
    body = [draw(st.sampled_from([encode_retry(draw(st.integers(0, 10**9))),
                                  b": connected\n"]))]
    sent: list[Sent] = []
    last_id = ""
    for _ in range(draw(st.integers(0, 8))):
        noise = draw(st.sampled_from(["", "heartbeat", "comment", "retry"]))
        if noise == "heartbeat":
            body.append(HEARTBEAT)
        elif noise == "comment":
            body.append(encode_comment(draw(text)))
        elif noise == "retry":
            body.append(encode_retry(draw(st.integers(0, 10**9))))
        message = draw(_messages(last_id))
        last_id = message.last_event_id
        sent.append(message)
        body.append(message.frame)
    return b"".join(body), sent


def _cut(body: bytes, positions: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(body) + 1) for p in positions})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def _spec_decode(pieces: list[bytes]) -> list[Message]:
    # Bytes cut inside a UTF-8 character must wait for the rest, as a browser's decoder does.
    utf8 = codecs.getincrementaldecoder("utf-8")()
    decoder = SpecDecoder()
    messages = [m for piece in pieces for m in decoder.feed(utf8.decode(piece))]
    assert utf8.decode(b"", final=True) == ""
    return messages


def _chronos_decode(pieces: list[bytes]) -> list[tuple[str, str, str]]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.flush()
    return [(e.event, e.data, e.id) for e in events]


@PROPERTY
@given(stream=_streams(), positions=st.lists(st.integers(min_value=0), max_size=40))
def test_a_stream_cut_anywhere_decodes_to_exactly_what_was_sent(
    stream: tuple[bytes, list[Sent]], positions: list[int]
) -> None:
    body, sent = stream
    pieces = _cut(body, positions)
    expected = [(s.type, s.data, s.last_event_id) for s in sent]
    assert [(m.type, m.data, m.last_event_id) for m in _spec_decode(pieces)] == expected
    assert _chronos_decode(pieces) == expected


@PROPERTY
@given(data=text, id=text, event=st.none() | text, retry=st.none() | st.integers(-5, 10**6))
@example(data="", id="", event=None, retry=None)
@example(data="\r", id="1-0", event="", retry=0)
@example(data="x", id="1-0\nretry: 1", event=None, retry=None)
@example(data="x", id="1-0", event="t\r\ndata: injected", retry=None)
def test_no_field_value_can_inject_another(
    data: str, id: str, event: str | None, retry: int | None
) -> None:
    """A value with CR, LF or NUL in `id`/`event` is refused; anything else is one message."""
    hostile = any(c in v for v in (id, event or "") for c in "\r\n\0")
    if hostile or (retry is not None and retry < 0):
        with pytest.raises(ValueError, match="SSE"):
            encode_message(data, id=id, event=event, retry=retry)
        return
    raw = encode_message(data, id=id, event=event, retry=retry)
    decoder = SpecDecoder()
    [message] = decoder.feed(raw.decode())
    assert (message.type, message.data, message.last_event_id) == (
        event or "message", _normalized(data), id)
    assert decoder.retry == retry
    assert decoder.comments == []


@PROPERTY
@given(type=text, data=text)
def test_an_event_type_cannot_inject_fields(type: str, data: str) -> None:
    if any(c in type for c in "\r\n\0"):
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            Event(type, data)
        return
    event = Event(type, data, id="1-2", topic="t")
    for named in (False, True):
        decoder = SpecDecoder()
        [message] = decoder.feed(event_frame(event, named=named).decode())
        assert orjson.loads(message.data) == {"id": "1-2", "type": type, "topic": "t",
                                              "data": data}
        assert message.type == ((type or "message") if named else "message")
        assert decoder.retry is None


@PROPERTY
@given(comment=text)
def test_a_comment_never_becomes_a_message(comment: str) -> None:
    raw = encode_comment(comment)
    decoder = SpecDecoder()
    assert decoder.feed(raw.decode()) == []
    assert decoder.comments == [" " + line for line in _normalized(comment).split("\n")]
    assert _chronos_decode([raw]) == []


@settings(max_examples=10, deadline=None)
@given(unit=st.sampled_from(["x", "é", "\U0001f916", "y" * 4000 + "\r\n", "z" * 4000 + "\r",
                             "w" * 4000 + "\n"]),
       size=st.integers(1 << 14, 1 << 18), cuts=st.lists(st.integers(0), max_size=8))
def test_very_long_data_round_trips(unit: str, size: int, cuts: list[int]) -> None:
    # Long lines, not many lines: the spec decoder copies its buffer once per line.
    data = unit * (size // len(unit.encode()))
    event = Event("big", data, id="1-0")
    body = encode_message(data, id="7-7") + event_frame(event)
    pieces = _cut(body, cuts)
    expected = [("message", _normalized(data), "7-7"), ("message", event.json().decode(), "1-0")]
    assert [(m.type, m.data, m.last_event_id) for m in _spec_decode(pieces)] == expected
    assert _chronos_decode(pieces) == expected

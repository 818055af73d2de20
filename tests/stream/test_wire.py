"""The SSE encoder, checked against a decoder written from the spec."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos.stream import Event
from chronos.stream._wire import (
    HEARTBEAT,
    encode_comment,
    encode_message,
    encode_retry,
    event_frame,
)
from tests.stream.sse_spec import SpecDecoder


def test_default_frame_is_data_only_with_the_type_in_the_json() -> None:
    event = Event("node_end", {"node": "extract", "status": "done"}, id="5-1", topic="s1")
    frame = event_frame(event)
    assert frame == (
        b'id: 5-1\ndata: {"id":"5-1","type":"node_end","topic":"s1",'
        b'"data":{"node":"extract","status":"done"}}\n\n'
    )
    [message] = SpecDecoder().feed(frame.decode())
    # What the guide's `source.onmessage` sees: an unnamed message, type inside the JSON.
    assert message.type == "message"
    assert json.loads(message.data)["type"] == "node_end"
    assert message.last_event_id == "5-1"


def test_frame_is_the_event_as_first_encoded() -> None:
    # Encoded once, for every connection: changing the data afterwards changes nothing sent.
    data = [1, 2]
    event = Event("t", data, id="1-0")
    first = event_frame(event)
    data.append(3)
    assert event_frame(event) == first
    assert orjson.loads(SpecDecoder().feed(first.decode())[0].data)["data"] == [1, 2]


def test_named_frame_carries_an_event_line() -> None:
    event = Event("token", "hi", id="1-0", topic="x")
    [message] = SpecDecoder().feed(event_frame(event, named=True).decode())
    assert message.type == "token"
    assert json.loads(message.data)["data"] == "hi"


@pytest.mark.parametrize("bad", ["a\nb", "a\rretry: 1", "x\r\nid: 9", "nul\0"])
def test_a_type_cannot_inject_fields(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Event(bad)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_message("x", event=bad)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_message("x", id=bad)


def test_multiline_and_non_ascii_data() -> None:
    raw = encode_message("première\r\nligne 2\rligne 3\n\nfin ✓", id="1-2")
    [message] = SpecDecoder().feed(raw.decode())
    assert message.data == "première\nligne 2\nligne 3\n\nfin ✓"
    event = Event("t", {"text": "a\nb\r\nc — 日本"}, id="3-4")
    [message] = SpecDecoder().feed(event_frame(event).decode())
    assert json.loads(message.data)["data"] == {"text": "a\nb\r\nc — 日本"}


def test_comments_heartbeat_and_retry_dispatch_nothing() -> None:
    decoder = SpecDecoder()
    raw = encode_retry(2500) + HEARTBEAT + encode_comment("two\nlines") + HEARTBEAT
    assert decoder.feed(raw.decode()) == []
    assert decoder.comments == [" heartbeat", " two", " lines", " heartbeat"]
    assert decoder.retry == 2500
    # Between messages, they change nothing about the next one.
    [message] = decoder.feed(event_frame(Event("t", 1, id="1-0")).decode())
    assert (message.type, message.last_event_id) == ("message", "1-0")
    with pytest.raises(ValueError, match="retry"):
        encode_retry(-1)


def test_unpublished_event_has_no_frame() -> None:
    with pytest.raises(ValueError, match="published"):
        event_frame(Event("t"))


def test_data_that_is_not_json_fails_at_encoding() -> None:
    with pytest.raises(TypeError):
        Event("t", object(), id="1-0").json()


# Any text that can be UTF-8 (no lone surrogates); field values without line breaks or NUL.
text = st.text(st.characters(exclude_categories=("Cs",)))
field = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n\0"))


@given(data=text, id=field, event=st.none() | field)
def test_round_trip_through_a_spec_decoder(data: str, id: str, event: str | None) -> None:
    decoder = SpecDecoder()
    messages = decoder.feed(encode_message(data, id=id, event=event).decode())
    assert len(messages) == 1
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert messages[0].data == expected
    assert messages[0].last_event_id == id
    assert messages[0].type == (event or "message")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@given(type=field, data=json_values)
def test_event_frames_round_trip(type: str, data: object) -> None:
    event = Event(type, data, id="1700000000000-7", topic="t")
    for named in (False, True):
        decoder = SpecDecoder()
        [message] = decoder.feed(event_frame(event, named=named).decode())
        assert orjson.loads(message.data) == {
            "id": "1700000000000-7",
            "type": type,
            "topic": "t",
            "data": data,
        }
        assert message.last_event_id == "1700000000000-7"
        if named:
            assert message.type == (type or "message")

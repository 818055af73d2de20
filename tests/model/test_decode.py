"""The decoders give the same frames however the bytes are split."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos.model._decode import JSONArrayDecoder, NDJSONDecoder, SSEDecoder

SSE_BODY = (
    ": comment line\r\n"
    "event: delta\r\n"
    'data: {"text": "h\u00e9llo \u2028 \U0001f916"}\r\n'
    "\r\n"
    "data: first line\n"
    "data: second line\n"
    "id: 42\n"
    "\n"
    "data:no-space\r"
    "\r"
    "event: ignored-without-data\n"
    "\n"
    "retry: 10\n"
    "data\n"
    "\n"
    "data: [DONE]\n\n"
).encode()

SSE_EXPECTED = [
    ("delta", '{"text": "h\u00e9llo \u2028 \U0001f916"}', ""),
    ("message", "first line\nsecond line", "42"),
    ("message", "no-space", "42"),
    ("message", "", "42"),
    ("message", "[DONE]", "42"),
]


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    positions = sorted({c % (len(body) + 1) for c in cuts})
    pieces, start = [], 0
    for pos in [*positions, len(body)]:
        pieces.append(body[start:pos])
        start = pos
    return pieces


def _sse(pieces: list[bytes]) -> list[tuple[str, str, str]]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.flush()
    return [(e.event, e.data, e.id) for e in events]


def test_sse_follows_the_spec_in_one_piece() -> None:
    assert _sse([SSE_BODY]) == SSE_EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_sse_is_independent_of_splits(cuts: list[int]) -> None:
    # "data\n" (a field without colon) appends an empty line: an event with empty data,
    # which the spec still dispatches because the data buffer holds a newline.
    assert _sse(_split(SSE_BODY, cuts)) == _sse([SSE_BODY])


def test_sse_byte_by_byte_with_crlf_split_between_cr_and_lf() -> None:
    assert _sse([bytes([b]) for b in SSE_BODY]) == _sse([SSE_BODY])


def test_sse_drops_an_unterminated_event_at_end_of_stream() -> None:
    assert _sse([b"data: a\n\ndata: b"]) == [("message", "a", "")]


NDJSON_BODY = b'{"a": 1}\n\n{"b": "\xc3\xa9"}\r\n{"c": 3}'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1000), max_size=20))
def test_ndjson_is_independent_of_splits(cuts: list[int]) -> None:
    decoder = NDJSONDecoder()
    lines = [x for p in _split(NDJSON_BODY, cuts) for x in decoder.feed(p)] + decoder.flush()
    assert [orjson.loads(x) for x in lines] == [{"a": 1}, {"b": "\u00e9"}, {"c": 3}]


GEMINI_ELEMENTS = [
    {"candidates": [{"content": {"parts": [{"text": 'brace } bracket ] quote \\" \u00e9'}]}}]},
    {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}],
     "usageMetadata": {"promptTokenCount": 3}},
]
GEMINI_BODY = (
    "[" + "\n,\r\n".join(json.dumps(e, indent=2, ensure_ascii=False) for e in GEMINI_ELEMENTS)
    + "]"
).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_json_array_is_independent_of_splits(cuts: list[int]) -> None:
    decoder = JSONArrayDecoder()
    elements = [x for p in _split(GEMINI_BODY, cuts) for x in decoder.feed(p)]
    decoder.flush()
    assert [orjson.loads(x) for x in elements] == GEMINI_ELEMENTS


def test_json_array_byte_by_byte() -> None:
    decoder = JSONArrayDecoder()
    elements = [x for b in GEMINI_BODY for x in decoder.feed(bytes([b]))]
    assert [orjson.loads(x) for x in elements] == GEMINI_ELEMENTS


def test_json_array_that_never_closes_is_an_error() -> None:
    decoder = JSONArrayDecoder()
    decoder.feed(GEMINI_BODY[:-10])
    with pytest.raises(ValueError, match="ended before"):
        decoder.flush()


def test_json_error_object_instead_of_array_is_one_element() -> None:
    decoder = JSONArrayDecoder()
    body = b'{"error": {"code": 400, "message": "bad [x]"}}'
    assert [orjson.loads(x) for x in decoder.feed(body)] == [orjson.loads(body)]
    decoder.flush()

"""The SSE decoder against the WHATWG "Interpreting an event stream" rules, at every split.

Each case below is a sentence of the spec (HTML Living Standard, section 9.2.6 "Interpreting
an event stream", and the examples of 9.2.5) turned into a body and the events a browser's
EventSource would fire for it. Every case is fed whole, in every three-piece split (two cuts
anywhere, empty pieces included), and one byte at a time with an empty read after each byte,
so a BOM, a UTF-8 character or a CRLF cut between reads is covered wherever it falls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chronos.model import ChatRequest, Message, OpenAIProvider
from chronos.model._decode import SSEDecoder
from tests.model.replay import ReplayServer, Reply

Fired = tuple[str, str, str]  # (type, data, lastEventId) of a dispatched MessageEvent


@dataclass(frozen=True)
class Case:
    rule: str  # the spec's words
    body: bytes
    fired: list[Fired]
    last_event_id: str = ""
    retry: int | None = None


CASES = [
    Case("the data buffer's lines are joined with LF; the final LF is removed",
         b"data: YHOO\ndata: +2\ndata: 10\n\n", [("message", "YHOO\n+2\n10", "")]),
    Case("a comment fires nothing; `id` with no value resets the last event ID to empty; "
         "only one leading space is stripped",
         b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
         b"data:  third event\n\n",
         [("message", "first event", "1"), ("message", "second event", ""),
          ("message", " third event", "")]),
    Case("a field without a colon has the whole line as its name and an empty value: `data` "
         "alone fires an empty event, two of them a single LF; the last block is discarded "
         "because it is not followed by a blank line",
         b"data\n\ndata\ndata\n\ndata:",
         [("message", "", ""), ("message", "\n", "")]),
    Case("the space after the colon is ignored if present",
         b"data:test\n\ndata: test\n\n", [("message", "test", ""), ("message", "test", "")]),
    Case("one leading U+FEFF BYTE ORDER MARK character must be ignored",
         b"\xef\xbb\xbfdata: first\n\ndata: second\n\n",
         [("message", "first", ""), ("message", "second", "")]),
    Case("only one: a second BOM is part of the first field's name, an unknown field",
         b"\xef\xbb\xbf\xef\xbb\xbfdata: lost\n\ndata: kept\n\n", [("message", "kept", "")]),
    Case("a BOM that is not leading is text",
         b"data: \xef\xbb\xbfx\n\n", [("message", "\ufeffx", "")]),
    Case("lines end with CRLF, a lone LF or a lone CR",
         b"data: a\r\rdata: b\r\n\r\ndata: c\n\ndata: d\n\rdata: e\r\n\n",
         [("message", "a", ""), ("message", "b", ""), ("message", "c", ""),
          ("message", "d", ""), ("message", "e", "")]),
    Case("a CR ending the body is a line end, so the blank line dispatches",
         b"data: a\n\r", [("message", "a", "")]),
    Case("the event type buffer names the event, and is reset after dispatch",
         b"event: add\ndata: 73857293\n\ndata: plain\n\nevent: only-type\n\ndata: after\n\n",
         [("add", "73857293", ""), ("message", "plain", ""), ("message", "after", "")]),
    Case("`event` without a colon sets the type to the empty string, so \"message\"",
         b"event: named\nevent\ndata: x\n\n", [("message", "x", "")]),
    Case("a value may contain colons; the field name ends at the first one",
         b'data: {"a": "b:c"}\nevent:x:y\n\n', [("x:y", '{"a": "b:c"}', "")]),
    Case("only a space is stripped, not a tab",
         b"data:\tx\n\n", [("message", "\tx", "")]),
    Case("an `id` whose value contains NUL is ignored",
         b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
         [("message", "a", "1"), ("message", "b", "1")], last_event_id="1"),
    Case("the last event ID is set at every blank line, even when no event fires; it persists",
         b"id: 7\n\ndata: a\n\n", [("message", "a", "7")], last_event_id="7"),
    Case("an `id` in a block the stream never finished is not the last event ID",
         b"id: 1\ndata: a\n\nid: 2\ndata: b\n", [("message", "a", "1")], last_event_id="1"),
    Case("`retry` made only of ASCII digits sets the reconnection time; anything else is "
         "ignored",
         "retry: 1500\n\nretry: 15x\nretry: -1\nretry:\nretry\nretry: \u0661\u0662\n\n"
         "data: a\n\n".encode(),
         [("message", "a", "")], retry=1500),
    Case("`retry` fires no event and persists", b"retry: 0\ndata: a\n\ndata: b\n\n",
         [("message", "a", ""), ("message", "b", "")], retry=0),
    Case("an unterminated last line is pending data, discarded at the end",
         b"data: a\n\nretry: 9", [("message", "a", "")]),
    Case("unknown fields are ignored", b"foo: bar\nDATA: shout\ndata: x\n\n",
         [("message", "x", "")]),
    Case("the stream is UTF-8 decoded; invalid bytes become U+FFFD",
         "data: h\u00e9llo \U0001f916 \u2028\n".encode() + b"data: \xff\xe2\x82\n\n",
         [("message", "h\u00e9llo \U0001f916 \u2028\n\ufffd\ufffd", "")]),
    Case("a body of fewer bytes than a BOM, not a BOM, is text (here, without a blank line)",
         b"\xef\xbb", []),
    Case("an empty body fires nothing", b"", []),
]


def _splits(body: bytes) -> Iterator[list[bytes]]:
    yield [body]
    for i in range(len(body) + 1):
        for j in range(i, len(body) + 1):
            yield [body[:i], body[i:j], body[j:]]
    yield [piece for index in range(len(body)) for piece in (body[index : index + 1], b"")]


def _decode(pieces: list[bytes]) -> tuple[list[Fired], SSEDecoder]:
    decoder = SSEDecoder()
    fired = [(e.event, e.data, e.id) for piece in pieces for e in decoder.feed(piece)]
    fired += [(e.event, e.data, e.id) for e in decoder.flush()]
    return fired, decoder


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.rule[:60])
def test_the_rule_holds_at_every_split(case: Case) -> None:
    for pieces in _splits(case.body):
        fired, decoder = _decode(pieces)
        assert fired == case.fired, pieces
        assert decoder.last_event_id == case.last_event_id, pieces
        assert decoder.retry == case.retry, pieces


def test_a_cr_waits_for_its_lf_across_empty_reads() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    for _ in range(3):
        assert decoder.feed(b"") == []
    # This LF completes the CRLF; only the CR that follows is the blank line.
    assert decoder.feed(b"\n") == []
    assert [e.data for e in decoder.feed(b"\r")] == ["a"]


_STORY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Once upon"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" a time"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(4))
async def test_a_provider_body_that_opens_with_a_bom_loses_nothing(
    replay_server: ReplayServer, seed: int
) -> None:
    # Two-byte reads put the BOM's split at a different place for each seed.
    script = replay_server.script(Reply(body=b"\xef\xbb\xbf" + _STORY, seed=seed, max_piece=2))
    req = ChatRequest(messages=[Message(role="user", content="Hi")])
    async with OpenAIProvider("m", base_url=script.base_url, api_key="k") as provider:
        chunks = [chunk.content async for chunk in provider.stream_chat(req)]
    assert "".join(chunks) == "Once upon a time"
    assert chunks[0] == "Once upon"

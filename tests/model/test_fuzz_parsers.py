"""Fuzzing every provider stream parser: only typed errors, no hang, bounded memory.

Each parser (decoder + vendor translator, see `parsing.PARSERS`) is fed real recordings
mutated by hypothesis (bit flips, truncation, insertion and deletion of bytes and of SSE/JSON
tokens, a JSON value swapped for one of another type), and plain random bytes. Whatever
comes in, the parser either yields chunks whose fields have their declared types or raises a
`ChronosError`; any other exception fails the test. Each example runs under an alarm (a hang
fails it), and the last tests check that memory stays proportional to the input.

The default run is bounded (a few seconds per parser); `scripts/fuzz` runs the same tests for
longer by setting `CHRONOS_FUZZ_SECONDS` (see `tests/fuzzing.py`).
"""

from __future__ import annotations

import contextlib
import tracemalloc

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos.errors import ChronosError, StreamProtocolError
from chronos.model import ChatRequest, ChatResponse, Message, RetryPolicy, StopReason, Usage
from chronos.model._decode import JSONArrayDecoder, NDJSONDecoder, SSEDecoder
from tests.fuzzing import FUZZ, hang_guard, mutated
from tests.model.eventstream_frames import event
from tests.model.parsing import PARSERS, Outcome, parse
from tests.model.recordings import load_all
from tests.model.replay import ReplayServer, Reply
from tests.stream.sse_spec import SpecDecoder

# The recordings each parser understands: the seeds mutations start from.
_API_OF = {"openai-chat": "chat.completions", "openai-responses": "responses",
           "anthropic": "messages", "ollama": "api/chat", "cohere": "v2/chat",
           "bedrock": "converse-stream"}
_RECORDINGS = [r for r in load_all() if r.status < 400]


def _corpus(parser: str) -> list[bytes]:
    if parser.startswith("gemini"):
        array = "json" in parser or parser.endswith("sniffed")
        return [r.body for r in _RECORDINGS if r.api == "streamGenerateContent"
                and ("json" in r.content_type) == array]
    return [r.body for r in _RECORDINGS if r.api == _API_OF[parser]]


def _check_types(outcome: Outcome) -> None:
    """What came out is what `ChatResponse` promises, whatever went in."""
    for chunk in outcome.chunks:
        assert isinstance(chunk, ChatResponse)
        for name in ("content", "reasoning", "id", "model"):
            assert isinstance(getattr(chunk, name), str), (name, getattr(chunk, name))
        for call in chunk.tool_calls:
            assert isinstance(call.id, str)
            assert call.id
            assert isinstance(call.name, str)
            assert isinstance(call.arguments, str)
        assert chunk.usage is None or isinstance(chunk.usage, Usage)
        assert chunk.stop_reason is None or isinstance(chunk.stop_reason, StopReason)
        assert chunk.raw_stop_reason is None or isinstance(chunk.raw_stop_reason, str)


def _pieces(body: bytes, cuts: list[int]) -> list[bytes]:
    positions = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *positions], [*positions, len(body)], strict=True)]


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_mutated_recordings_raise_only_typed_errors(parser: str) -> None:
    make, content_type = PARSERS[parser]
    corpus = _corpus(parser)
    if not corpus:
        pytest.skip(f"no recordings for {parser} in the recordings folder")

    @FUZZ
    @given(body=mutated(corpus), cuts=st.lists(st.integers(min_value=0), max_size=8))
    def fuzz(body: bytes, cuts: list[int]) -> None:
        with hang_guard():
            _check_types(parse(make(), content_type, _pieces(body, cuts)))

    fuzz()


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_random_bytes_raise_only_typed_errors(parser: str) -> None:
    make, content_type = PARSERS[parser]
    # Random bytes rarely look like a stream; these tokens make them get further in.
    tokens = st.sampled_from([b"data: ", b"event: ", b"\n", b"\r\n", b"\n\n", b"{", b"}", b"[",
                              b"]", b",", b'"', b"\\", b":", b"null", b"[DONE]", b'"type"',
                              b'"delta"', b'"choices"', b'"candidates"', b'"done":true', b"0"])
    body = st.lists(st.binary(max_size=16) | tokens, max_size=64).map(b"".join)

    @FUZZ.with_examples(100)
    @given(body=body, cuts=st.lists(st.integers(min_value=0), max_size=8))
    def fuzz(body: bytes, cuts: list[int]) -> None:
        with hang_guard():
            _check_types(parse(make(), content_type, _pieces(body, cuts)))

    fuzz()


# Inputs the fuzzers found that escaped as AttributeError, TypeError, UnicodeDecodeError or a
# field of the wrong type, before `StreamTranslator.translate` and ChunkBuilder's checks.
_FOUND = [
    ("openai-responses", b"data: []\n\n"),
    ("openai-chat", b'data: {"id": true, "choices": []}\n\ndata: [DONE]\n\n'),
    ("openai-chat", b'data: {"choices": [{"delta": {"content": 1}}]}\n\n'),
    ("openai-chat", b'data: {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": '
                    b'{"name": "f", "arguments": 5}}]}, "finish_reason": "tool_calls"}]}\n\n'),
    ("openai-chat", b'data: {"choices": [{"delta": {}, "finish_reason": ["x"]}]}\n\n'),
    ("openai-chat", b'data: {"choices": [], "usage": {"prompt_tokens": "3"}}\n\n'),
    ("openai-chat", b"event: \xff\ndata: {}\n\n"),
    ("gemini-sse", b'data: {"candidates": [true]}\n\n'),
    ("anthropic", b'data: {"type": "content_block_delta", "delta": [1]}\n\n'),
    ("ollama", b'{"message": {"content": ["x"]}}\n'),
    ("cohere", b'data: {"type": "message-start", "id": 5}\n\n'),
]


@pytest.mark.parametrize(("parser", "body"), _FOUND)
def test_found_inputs_are_stream_protocol_errors(parser: str, body: bytes) -> None:
    make, content_type = PARSERS[parser]
    outcome = parse(make(), content_type, [body])
    assert isinstance(outcome.error, StreamProtocolError), outcome


_SSE_TOKENS = st.sampled_from(["data", "data:", "data: ", "event:", "id:", "id: 7", "retry:",
                               "retry: 12", ":", ": c", " ", "x", "é", "\U0001f916", "\0",
                               "\n", "\r", "\r\n", "\n\n"])


@FUZZ
@given(text=st.lists(_SSE_TOKENS | st.text(max_size=4), max_size=40).map("".join),
       cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_sse_decoder_agrees_with_the_spec_on_any_input(text: str, cuts: list[int]) -> None:
    """Differential: chronos's fast decoder and the spec's algorithm see the same events."""
    body = text.encode()
    decoder = SSEDecoder()
    ours = [e for piece in _pieces(body, cuts) for e in decoder.feed(piece)] + decoder.flush()
    spec = SpecDecoder()
    # A final CR is a line end; the spec decoder waits to see whether LF follows. Decoding
    # the body as UTF-8 drops one leading BOM, which this spec decoder leaves to its caller.
    theirs = spec.feed(text.removeprefix("\ufeff") + ("\n" if text.endswith("\r") else ""))
    assert [(e.event, e.data, e.id) for e in ours] == [
        (m.type, m.data, m.last_event_id) for m in theirs]


@FUZZ
@given(body=st.binary(max_size=256) | st.lists(st.sampled_from(
    [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b"\n", b"1", b"x"]), max_size=64).map(b"".join),
       cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_framing_decoders_raise_nothing_but_value_error_at_flush(
    body: bytes, cuts: list[int]
) -> None:
    """`_stream` turns the JSON array's ValueError into StreamProtocolError; nothing else."""
    for decoder in (SSEDecoder(), NDJSONDecoder(), JSONArrayDecoder()):
        with hang_guard():
            for piece in _pieces(body, cuts):
                decoder.feed(piece)
            if isinstance(decoder, JSONArrayDecoder):
                with contextlib.suppress(ValueError):
                    decoder.flush()
            else:
                decoder.flush()


# --- the real HTTP path ---------------------------------------------------------------------

_HTTP_PARSERS = {"openai-chat", "openai-responses", "anthropic", "gemini-json-array",
                 "ollama", "cohere", "bedrock"}
_REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])


async def _over_http(parser: str, body: bytes, server: ReplayServer) -> None:
    make, content_type = PARSERS[parser]
    script = server.script(Reply(body=body, headers={"content-type": content_type}))
    provider = make()
    provider.base_url = script.base_url
    provider.retry = RetryPolicy(max_retries=0)
    chunks: list[ChatResponse] = []
    async with provider:
        try:
            with anyio.fail_after(10):
                async for chunk in provider.stream_chat(_REQUEST):
                    chunks.append(chunk)
        except ChronosError:
            pass
    _check_types(Outcome(tuple(chunks), None))


@pytest.mark.parametrize("parser", sorted(_HTTP_PARSERS))
def test_mutated_recordings_over_http_raise_only_typed_errors(
    parser: str, replay_server: ReplayServer
) -> None:
    """The same through `HTTPProvider._stream` itself, over the real replay server."""
    corpus = _corpus(parser)
    if not corpus:
        pytest.skip(f"no recordings for {parser} in the recordings folder")

    @FUZZ.with_examples(20)
    @given(body=mutated(corpus))
    def fuzz(body: bytes) -> None:
        anyio.run(_over_http, parser, body, replay_server)

    fuzz()


# --- memory ---------------------------------------------------------------------------------


def _peak(parser: str, body: bytes, piece: int) -> int:
    make, content_type = PARSERS[parser]
    tracemalloc.start()
    try:
        with hang_guard(60):
            parse(make(), content_type, (body[i : i + piece] for i in range(0, len(body), piece)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _long_line(parser: str, size: int) -> bytes:
    """One valid event whose text is `size` bytes long, in the parser's framing."""
    element = b'{"candidates":[{"content":{"parts":[{"text":"' + b"x" * size + b'"}]}}]}'
    if parser in ("gemini-json-array", "gemini-sniffed"):
        return b"[" + element + b"]"
    if parser == "ollama":
        return element + b"\n"
    if parser == "bedrock":
        return event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * size}})
    return b"data: " + element + b"\n\n"


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_memory_stays_proportional_to_the_input(parser: str) -> None:
    """Garbage, and one long line fed 64 bytes at a time (the unfinished line must be kept,
    and is copied a few times on the way to a chunk): peak memory grows linearly with the
    input, and the line finishes (long lines used to be copied, or rescanned, whole on
    every read: quadratic time)."""
    peaks = []
    for size in (1 << 19, 1 << 21):
        garbage = bytes(range(256)) * (size // 256)
        for body, piece in ((garbage, 4096), (_long_line(parser, size), 64)):
            peak = _peak(parser, body, piece)
            # orjson.loads of one long string alone peaks near 13 times its size.
            assert peak < 24 * len(body), (parser, peak, len(body))
            peaks.append(peak)
    # Four times the input: about four times the memory, not sixteen.
    assert peaks[3] < 6 * peaks[1], peaks

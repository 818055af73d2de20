"""A background-mode Responses stream survives a dropped connection, however it drops.

Every recorded Responses stream (they carry `sequence_number`) is served as a background
response whose connection is cut after every event index in turn, and inside every fourth
event. The replay server then answers the resume request, `GET /responses/{id}?stream=true
&starting_after=<n>`, as OpenAI does: with the events after the one numbered `n`. What the
caller sees must be exactly the chunks of the uncut stream: nothing repeated, nothing missing.
Vendors that cannot resume still fail loudly, with `StreamDisconnectedError`.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from chronos.errors import StreamDisconnectedError
from chronos.model import ChatRequest, ChatResponse, ChatStream, Message, RetryPolicy
from chronos.model.anthropic import AnthropicProvider
from chronos.model.openai_responses import OpenAIResponsesProvider
from tests.model.parsing import parse
from tests.model.recordings import API_KEY, Recording, load_all, recording_id
from tests.model.replay import Exchange, ReplayServer, Reply

REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')
RECORDINGS = [r for r in load_all()
              if r.api == "responses" and r.status < 400 and _SEQUENCE.search(r.body)]


def _events(body: bytes) -> list[bytes]:
    """The body's SSE events, each with its blank-line terminator."""
    return [event for event in re.split(rb"(?<=\n\n)", body) if event]


def _sequence(event: bytes) -> int | None:
    found = _SEQUENCE.search(event)
    return int(found.group(1)) if found else None


def _continuation(events: list[bytes]) -> Reply:
    """The resume reply: the events after the one `starting_after` names, as OpenAI sends."""

    def body_for(exchange: Exchange) -> bytes:
        query = parse_qs(urlsplit(exchange.path).query)
        assert query["stream"] == ["true"]
        if "starting_after" not in query:
            return b"".join(events)
        after = int(query["starting_after"][0])
        index = next(i for i, event in enumerate(events) if _sequence(event) == after)
        return b"".join(events[index + 1 :])

    return Reply(headers={"content-type": "text/event-stream"}, body_for=body_for,
                 max_piece=4096)


def _prefix(recording: Recording) -> str:
    return urlsplit(recording.request_path).path.rsplit("/responses", 1)[0]


def _provider(recording: Recording, server_url: str) -> OpenAIResponsesProvider:
    provider = OpenAIResponsesProvider("test-model", base_url=server_url + _prefix(recording),
                                       api_key=API_KEY, background=True)
    provider.retry = RetryPolicy(max_retries=0)
    return provider


async def _collect(provider: OpenAIResponsesProvider) -> list[ChatResponse]:
    return [chunk async for chunk in provider.stream_chat(REQUEST)]


def test_there_are_responses_recordings_with_sequence_numbers() -> None:
    assert len(RECORDINGS) >= 10


@pytest.mark.anyio
@pytest.mark.parametrize("recording", RECORDINGS, ids=recording_id)
async def test_a_cut_after_or_inside_any_event_is_resumed_invisibly(
    recording: Recording, replay_server: ReplayServer
) -> None:
    events = _events(recording.body)
    first_numbered = next(i for i, event in enumerate(events) if _sequence(event) is not None)
    whole = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                  [recording.body])
    assert whole.error is None
    seed = zlib.crc32(recording.body)
    # One provider for every cut: a new HTTP client per cut would cost more than the cuts.
    provider = _provider(recording, "http://127.0.0.1:9")
    for index in range(first_numbered, len(events)):
        cuts = [b"".join(events[: index + 1])]
        if index + 1 < len(events) and index % 4 == 0:  # inside an event: a sample suffices
            following = events[index + 1]
            cuts.append(cuts[0] + following[: len(following) // 2])
        for cut in cuts:
            script = replay_server.script(
                Reply(body=cut, headers={"content-type": "text/event-stream"}, seed=seed,
                      max_piece=4096, end="abrupt"),
                _continuation(events),
            )
            provider.base_url = script.base_url + _prefix(recording)
            chunks = await _collect(provider)
            assert tuple(chunks) == whole.chunks, (index, len(cut))
            post = script.exchanges[0]
            assert post.method == "POST"
            assert b'"background":true' in post.body
            assert b'"store":true' in post.body
            if len(script.exchanges) == 2:  # no resume when the cut came after the end
                resume = script.exchanges[1]
                assert resume.method == "GET"
                assert urlsplit(resume.path).path.endswith(f"/responses/{chunks[-1].id}")
                query = parse_qs(urlsplit(resume.path).query)
                assert query["starting_after"] == [str(_sequence(events[index]))]
                assert resume.headers["authorization"] == f"Bearer {API_KEY}"
    await provider.aclose()


@pytest.mark.anyio
async def test_resume_stream_continues_a_response_by_id(replay_server: ReplayServer) -> None:
    recording = max(RECORDINGS, key=lambda r: len(_events(r.body)))
    events = _events(recording.body)
    whole = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                  [recording.body])
    text = "".join(chunk.content for chunk in whole.chunks)
    response_id = whole.chunks[-1].id
    middle = len(events) // 2
    after = _sequence(events[middle])
    assert after is not None
    before = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                   events[: middle + 1])
    script = replay_server.script(_continuation(events), _continuation(events))
    async with _provider(recording, script.base_url) as provider:
        rest = [chunk async for chunk in provider.resume_stream(response_id, after=after)]
        from_start = [chunk async for chunk in provider.resume_stream(response_id)]
    assert "".join(c.content for c in before.chunks) + "".join(c.content for c in rest) == text
    assert rest[-1] == whole.chunks[-1]
    assert tuple(from_start) == whole.chunks
    assert parse_qs(urlsplit(script.exchanges[0].path).query)["starting_after"] == [str(after)]
    assert "starting_after" not in script.exchanges[1].path


@pytest.mark.anyio
async def test_resuming_gives_up_when_it_makes_no_progress(replay_server: ReplayServer) -> None:
    recording = RECORDINGS[0]
    events = _events(recording.body)
    cut = Reply(body=b"".join(events[:2]), headers={"content-type": "text/event-stream"},
                end="abrupt")
    nothing = Reply(body=b"", headers={"content-type": "text/event-stream"}, end="abrupt")
    script = replay_server.script(cut, nothing, nothing, nothing, nothing)
    provider = _provider(recording, script.base_url)
    provider.max_resumes = 3
    provider.retry = RetryPolicy(max_retries=0, initial_backoff=0.001)
    async with provider:
        with pytest.raises(StreamDisconnectedError):
            await _collect(provider)
    assert [e.method for e in script.exchanges] == ["POST", "GET", "GET", "GET"]


@pytest.mark.anyio
async def test_vendors_that_cannot_resume_fail_loudly(replay_server: ReplayServer) -> None:
    recording = RECORDINGS[0]
    events = _events(recording.body)
    cut = b"".join(events[:3])
    # A Responses stream not in background mode: nothing on the server to resume.
    script = replay_server.script(Reply(body=cut, end="abrupt"))
    plain = OpenAIResponsesProvider("m", base_url=script.base_url, api_key=API_KEY)
    async with plain:
        with pytest.raises(StreamDisconnectedError):
            [chunk async for chunk in plain.stream_chat(REQUEST)]
    assert len(script.exchanges) == 1
    anthropic_body = (b'event: message_start\ndata: {"type":"message_start","message":'
                      b'{"id":"msg_1","model":"m","usage":{"input_tokens":1}}}\n\n')
    script = replay_server.script(Reply(body=anthropic_body, end="abrupt"))
    anthropic = AnthropicProvider("m", base_url=script.base_url, api_key=API_KEY)
    async with anthropic:
        with pytest.raises(StreamDisconnectedError):
            [chunk async for chunk in anthropic.stream_chat(REQUEST)]
    assert len(script.exchanges) == 1


def test_resume_stream_has_a_sync_twin(replay_server: ReplayServer) -> None:
    recording = RECORDINGS[0]
    whole = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                  [recording.body])
    script = replay_server.script(_continuation(_events(recording.body)))
    provider = _provider(recording, script.base_url)
    chunks = list(provider.resume_stream_sync(whole.chunks[-1].id))
    assert tuple(chunks) == whole.chunks


def _cancel_reply() -> Reply:
    return Reply(headers={"content-type": "application/json"},
                 body=b'{"id":"resp_x","object":"response","status":"cancelled"}')


def _half(recording: Recording) -> Reply:
    """The first half of the stream, then nothing: a generation still going on."""
    events = _events(recording.body)
    return Reply(body=b"".join(events[: len(events) // 2]), end="stall",
                 headers={"content-type": "text/event-stream"})


def _first_chunk_with_id(recording: Recording) -> int:
    chunks = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                   [recording.body]).chunks
    return next(i for i, chunk in enumerate(chunks) if chunk.id)


@pytest.mark.anyio
async def test_closing_a_background_stream_early_cancels_the_response(
    replay_server: ReplayServer,
) -> None:
    recording = max(RECORDINGS, key=lambda r: len(_events(r.body)))
    script = replay_server.script(_half(recording), _cancel_reply())
    async with _provider(recording, script.base_url) as provider:
        async with provider.stream_chat(REQUEST) as stream:
            async for chunk in stream:
                if chunk.id:
                    response_id = chunk.id
                    break
        assert [e.method for e in script.exchanges] == ["POST", "POST"]
        cancel = script.exchanges[1]
        assert urlsplit(cancel.path).path == (
            f"{script.prefix}{_prefix(recording)}/responses/{response_id}/cancel")
        assert cancel.headers["authorization"] == f"Bearer {API_KEY}"
        assert cancel.body == b""
        assert script.exchanges[0].client_left.is_set()


@pytest.mark.anyio
async def test_a_cancelled_consumer_cancels_the_response_too(
    replay_server: ReplayServer,
) -> None:
    recording = max(RECORDINGS, key=lambda r: len(_events(r.body)))
    skip = _first_chunk_with_id(recording)
    script = replay_server.script(_half(recording), _cancel_reply())
    async with _provider(recording, script.base_url) as provider:
        read = asyncio.Event()

        async def consume() -> None:
            async for i, _ in aenumerate(provider.stream_chat(REQUEST)):
                if i >= skip:
                    read.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(read.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [e.method for e in script.exchanges] == ["POST", "POST"]
        assert urlsplit(script.exchanges[1].path).path.endswith("/cancel")


@pytest.mark.anyio
async def test_what_is_not_cancelled_on_close(replay_server: ReplayServer) -> None:
    recording = max(RECORDINGS, key=lambda r: len(_events(r.body)))
    events = _events(recording.body)
    response_id = parse(_provider(recording, "http://127.0.0.1:9"), "text/event-stream",
                        [recording.body]).chunks[-1].id
    # A stream read to its end; one closed early by a provider told to keep it running;
    # a continuation read with resume_stream, which did not start the response.
    script = replay_server.script(
        Reply(body=recording.body), _half(recording), _half(recording), _cancel_reply())
    async with _provider(recording, script.base_url) as provider:
        assert [chunk async for chunk in provider.stream_chat(REQUEST)][-1].id == response_id
        provider.cancel_on_close = False
        async with provider.stream_chat(REQUEST) as stream:
            await anext(stream)
        provider.cancel_on_close = True
        async with provider.resume_stream(response_id, after=_sequence(events[1])) as stream:
            await anext(stream)
    assert [e.method for e in script.exchanges] == ["POST", "POST", "GET"]


@pytest.mark.anyio
async def test_a_failed_cancel_still_closes_the_stream(replay_server: ReplayServer) -> None:
    recording = max(RECORDINGS, key=lambda r: len(_events(r.body)))
    skip = _first_chunk_with_id(recording)
    failed = Reply(status=500, headers={"content-type": "application/json"},
                   body=b'{"error":{"message":"the server broke"}}')
    script = replay_server.script(_half(recording), failed)
    provider = _provider(recording, script.base_url)
    async with provider, provider.stream_chat(REQUEST) as stream:
        for _ in range(skip + 1):
            await anext(stream)
    # The consumer left; the error of a cancel nobody waits for goes nowhere.
    assert [e.method for e in script.exchanges] == ["POST", "POST"]
    assert script.exchanges[1].path.endswith("/cancel")


async def aenumerate(chunks: ChatStream) -> AsyncIterator[tuple[int, ChatResponse]]:
    i = 0
    async for chunk in chunks:
        yield i, chunk
        i += 1

"""A vendor that throttles or is overloaded after the stream began.

The policy (`HTTPProvider._read`): an error event that means "try again" (Anthropic
`overloaded_error` / `rate_limit_error` / `api_error`, Bedrock `throttlingException` /
`serviceUnavailableException` / `internalServerException`) is retried like the same status
before the stream, under the same `RetryPolicy`, only while no chunk has reached the caller:
nothing was seen, so nothing is repeated. After the first chunk it is raised: neither vendor
can continue a generation, and a new request would generate (and bill) the text again.

Every real recorded Anthropic Messages and Bedrock ConverseStream stream is served by the
replay server with the error spliced in after its silent opening events (before the first
chunk) or after its first chunk, then, for the retry, the recording as it was.
"""

from __future__ import annotations

import re
import struct

import pytest

from chronos.errors import ChronosError, ProviderStreamError, RateLimitError
from chronos.model import ChatRequest, ChatResponse, Message, RetryPolicy
from chronos.model._provider import HTTPProvider
from tests.model.eventstream_frames import exception
from tests.model.parsing import parse
from tests.model.recordings import PROVIDERS, Recording, load_all, recording_id
from tests.model.replay import ReplayServer, Reply

REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])
RECORDINGS = [r for r in load_all() if r.status < 400 and (
    r.api == "converse-stream" or (r.api == "messages" and "event-stream" in r.content_type))]
OVERLOADED = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
              b'"message":"Overloaded"}}\n\n')
THROTTLED = exception("throttlingException", {"message": "Too many requests, slow down"})


def _events(recording: Recording) -> list[bytes]:
    """The body's SSE events or event-stream frames, each whole."""
    body = recording.body
    if recording.api == "messages":
        return [event for event in re.split(rb"(?<=\n\n)", body) if event]
    frames, at = [], 0
    while at < len(body):
        (length,) = struct.unpack_from(">I", body, at)
        frames.append(body[at : at + length])
        at += length
    return frames


def _error(recording: Recording) -> bytes:
    return OVERLOADED if recording.api == "messages" else THROTTLED


def _provider(recording: Recording, base_url: str) -> HTTPProvider:
    provider = PROVIDERS[recording.api](recording, base_url)
    provider.retry = RetryPolicy(max_retries=2, initial_backoff=0.001, max_backoff=0.001)
    return provider


def _silent(recording: Recording) -> int:
    """How many opening events give the caller no chunk yet (message start, block start...)."""
    provider = _provider(recording, "http://127.0.0.1:9")
    events = _events(recording)
    return next(k for k in range(len(events) + 1)
                if parse(provider, recording.content_type, events[: k + 1]).chunks)


def _reply(body: bytes, recording: Recording) -> Reply:
    return Reply(body=body, headers={"content-type": recording.content_type}, max_piece=4096)


async def _collect(provider: HTTPProvider, into: list[ChatResponse]) -> None:
    async with provider:
        async for chunk in provider.stream_chat(REQUEST):
            into.append(chunk)


def test_there_are_recordings_of_both_vendors() -> None:
    assert {r.api for r in RECORDINGS} == {"messages", "converse-stream"}
    assert len(RECORDINGS) >= 20


@pytest.mark.anyio
@pytest.mark.parametrize("recording", RECORDINGS, ids=recording_id)
async def test_throttled_before_the_first_chunk_is_retried_and_nothing_repeats(
    recording: Recording, replay_server: ReplayServer
) -> None:
    whole = parse(_provider(recording, "http://127.0.0.1:9"), recording.content_type,
                  [recording.body])
    events = _events(recording)
    throttled = b"".join(events[: _silent(recording)]) + _error(recording)
    script = replay_server.script(_reply(throttled, recording), _reply(throttled, recording),
                                  _reply(recording.body, recording))
    chunks: list[ChatResponse] = []
    await _collect(_provider(recording, script.base_url), chunks)
    assert tuple(chunks) == whole.chunks
    assert [e.method for e in script.exchanges] == ["POST"] * 3
    assert script.exchanges[0].body == script.exchanges[2].body


@pytest.mark.anyio
@pytest.mark.parametrize("recording", RECORDINGS, ids=recording_id)
async def test_throttled_after_the_first_chunk_is_raised_once(
    recording: Recording, replay_server: ReplayServer
) -> None:
    provider = _provider(recording, "http://127.0.0.1:9")
    events = _events(recording)
    seen = events[: _silent(recording) + 1]
    before = parse(provider, recording.content_type, seen).chunks
    script = replay_server.script(_reply(b"".join(seen) + _error(recording), recording),
                                  _reply(recording.body, recording))
    chunks: list[ChatResponse] = []
    expected: type[ChronosError] = (
        ProviderStreamError if recording.api == "messages" else RateLimitError)
    with pytest.raises(expected, match=r"Overloaded|Too many requests"):
        await _collect(_provider(recording, script.base_url), chunks)
    assert tuple(chunks) == before
    assert len(script.exchanges) == 1


@pytest.mark.anyio
async def test_when_the_retries_run_out_the_vendor_error_is_raised(
    replay_server: ReplayServer,
) -> None:
    recording = next(r for r in RECORDINGS if r.api == "messages")
    throttled = b"".join(_events(recording)[: _silent(recording)]) + OVERLOADED
    script = replay_server.script(*[_reply(throttled, recording)] * 4)
    with pytest.raises(ProviderStreamError) as caught:
        await _collect(_provider(recording, script.base_url), [])
    assert caught.value.code == "overloaded_error"
    assert len(script.exchanges) == 3  # the first try and max_retries=2


@pytest.mark.anyio
@pytest.mark.parametrize("code", ["invalid_request_error", "permission_error", "mystery"])
async def test_an_error_event_that_is_not_throttling_is_never_retried(
    replay_server: ReplayServer, code: str
) -> None:
    recording = next(r for r in RECORDINGS if r.api == "messages")
    error = OVERLOADED.replace(b"overloaded_error", code.encode())
    throttled = b"".join(_events(recording)[: _silent(recording)]) + error
    script = replay_server.script(*[_reply(throttled, recording)] * 2)
    with pytest.raises(ProviderStreamError) as caught:
        await _collect(_provider(recording, script.base_url), [])
    assert caught.value.code == code
    assert len(script.exchanges) == 1



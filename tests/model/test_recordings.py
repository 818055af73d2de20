"""Every recorded vendor stream, replayed over real HTTP, must come out as the vendor meant it.

One test per recording (see `recordings.py` for the folder and the provider registry). The
body is served in pieces cut at seeded random byte positions. What must come out: the text,
the reasoning, each tool call exactly once (arguments compared as parsed JSON, "" == {}), the
raw finish reason and its mapping, the usage object, the model, or the typed error; and
`chat()` equals the accumulated stream.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import unquote

import pytest

from chronos.errors import (
    AuthenticationError,
    BadRequestError,
    ChronosError,
    NotFoundError,
    ProviderHTTPError,
    ProviderStreamError,
    RateLimitError,
    ServerError,
)
from chronos.model import (
    ChatRequest,
    ChatResponse,
    Message,
    RetryPolicy,
    StopReason,
    StreamAccumulator,
)
from tests.model.recordings import (
    API_KEY,
    NEVER,
    NOT_YET,
    PROVIDERS,
    STOP_REASONS,
    ProviderFactory,
    Recording,
    load_all,
    recording_id,
)
from tests.model.replay import ReplayServer, Reply

RECORDINGS = load_all()
REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])


def _factory(recording: Recording) -> ProviderFactory:
    if recording.api in NEVER:
        pytest.skip(NEVER[recording.api])
    factory = PROVIDERS.get(recording.api)
    if factory is None:
        if recording.api in NOT_YET:
            pytest.skip(f"api={recording.api!r} needs {NOT_YET[recording.api]}, not written yet")
        pytest.fail(f"no provider registered for api={recording.api!r}")
    return factory


def _reply(recording: Recording) -> Reply:
    return Reply(
        status=recording.status,
        body=recording.body,
        headers={"content-type": recording.content_type},
        seed=zlib.crc32(recording.body),
    )


async def _collect(stream: AsyncIterable[ChatResponse], into: list[ChatResponse]) -> None:
    async for chunk in stream:
        into.append(chunk)


def _arguments(text: str) -> Any:
    return json.loads(text) if text.strip() else {}


def _error_message(error: Any) -> str | None:
    if isinstance(error, dict):
        inner = error.get("error", error)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
            return str(message) if message else None
        return str(inner)
    return str(error) if error else None


_HTTP_ERRORS = {401: AuthenticationError, 403: AuthenticationError, 404: NotFoundError,
                429: RateLimitError}


def _check_http_error(exc: BaseException, recording: Recording) -> None:
    status = recording.status
    assert isinstance(exc, ProviderHTTPError), repr(exc)
    assert exc.status_code == status
    expected_class = _HTTP_ERRORS.get(status, ServerError if status >= 500 else BadRequestError)
    assert isinstance(exc, expected_class), repr(exc)
    message = _error_message(recording.expected.get("error"))
    if message:
        assert message in str(exc)


def _check_response(whole: ChatResponse, chunks: list[ChatResponse], expected: Any) -> None:
    assert whole.content == expected.get("text", "")
    assert whole.reasoning == expected.get("reasoning", "")
    assert whole.refusal == (expected.get("refusal") or "")

    # The guide's loop must see each call once, complete.
    naive = [call for chunk in chunks for call in chunk.tool_calls]
    want = expected.get("tool_calls") or []
    assert [call.name for call in naive] == [call["name"] for call in want]
    for got, call in zip(naive, want, strict=False):
        assert got.id, "every tool call has an id"
        if call.get("id") is not None:
            assert got.id == call["id"]
        assert _arguments(got.arguments) == _arguments(call.get("arguments") or "")
    assert len({call.id for call in naive}) == len(naive), "tool call ids are unique"

    raw = expected.get("finish_reason")
    assert whole.raw_stop_reason == (str(raw) if raw is not None else None)
    mapped = STOP_REASONS.get(str(raw)) if raw is not None else None
    if expected.get("refusal") and mapped in (None, StopReason.END):
        # A refusal that the vendor ended as a normal stop is reported as filtered.
        assert whole.stop_reason is StopReason.CONTENT_FILTER
    elif raw is None:
        assert whole.stop_reason is None
    else:
        assert whole.stop_reason == (mapped or whole.stop_reason)
        assert isinstance(whole.stop_reason, StopReason)

    if expected.get("usage"):
        assert whole.usage is not None
        assert dict(whole.usage.raw) == expected["usage"]
    if expected.get("model"):
        assert whole.model == expected["model"]
    assert all(chunk.delta for chunk in chunks)
    assert chunks[-1].usage == whole.usage
    assert chunks[-1].stop_reason == whole.stop_reason


@pytest.mark.anyio
@pytest.mark.parametrize("recording", RECORDINGS, ids=recording_id)
async def test_recording_replays(recording: Recording, replay_server: ReplayServer) -> None:
    factory = _factory(recording)
    script = replay_server.script(_reply(recording), _reply(recording))
    provider = factory(recording, script.base_url)
    provider.retry = RetryPolicy(max_retries=0)
    expected = recording.expected
    chunks: list[ChatResponse] = []

    async with provider:
        if recording.status >= 400:
            with pytest.raises(ChronosError) as info:
                await _collect(provider.stream_chat(REQUEST), chunks)
            _check_http_error(info.value, recording)
            assert API_KEY not in repr(info.value) + str(info.value.__dict__)
        elif expected.get("error"):
            with pytest.raises(ProviderStreamError) as stream_info:
                await _collect(provider.stream_chat(REQUEST), chunks)
            message = _error_message(expected["error"])
            assert message
            assert message in str(stream_info.value)
            # What arrived before the error was delivered, not swallowed.
            assert "".join(c.content for c in chunks) == expected.get("text", "")
            assert "".join(c.reasoning for c in chunks) == expected.get("reasoning", "")
        else:
            await _collect(provider.stream_chat(REQUEST), chunks)
            acc = StreamAccumulator()
            for chunk in chunks:
                acc.add(chunk)
            whole = acc.result()
            _check_response(whole, chunks, expected)
            assert await provider.chat(REQUEST) == whole

    exchange = script.exchanges[0]
    assert exchange.method == "POST"
    # Compared decoded: recorders differ on "%3A" versus ":" in Bedrock model ids, both valid.
    assert unquote(exchange.path) == unquote(script.prefix + recording.request_path)
    assert isinstance(json.loads(exchange.body), dict)

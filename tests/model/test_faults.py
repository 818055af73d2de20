"""Failures through the same real HTTP server: typed errors, retries, timeouts, early exits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

import anyio
import pytest

from chronos.errors import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    StreamDisconnectedError,
    StreamProtocolError,
)
from chronos.model import (
    ChatRequest,
    ChatResponse,
    Message,
    OpenAIProvider,
    RetryPolicy,
    accumulate,
)
from tests.model.replay import ReplayServer, Reply, Script

KEY = "sk-secret-key-0123456789"
REQ = ChatRequest(messages=[Message(role="user", content="Tell me a story about a robot")])


def _sse(*chunks: Any, done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(events) + ("data: [DONE]\n\n" if done else "")).encode()


def _text(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "model": "m", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


STORY = _sse(_text("Once "), _text("upon "), _text("a time", "stop"))


class _Recorder(OpenAIProvider):
    """The real provider, with retry waits recorded instead of slept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def _provider(script: Script, **kwargs: Any) -> _Recorder:
    return _Recorder("m", base_url=script.base_url, api_key=KEY, **kwargs)


async def _collect(stream: AsyncIterable[ChatResponse], into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.content)


async def _left(script: Script, index: int = 0) -> bool:
    event = script.exchanges[index].client_left
    return await anyio.to_thread.run_sync(event.wait, 10)


@pytest.mark.anyio
async def test_clean_end_without_terminal_event_is_truncation(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_sse(_text("Once "), _text("upon"), done=False)))
    got = []
    async with _provider(script) as provider:
        with pytest.raises(StreamProtocolError, match="truncated"):
            await _collect(provider.stream_chat(REQ), got)
    assert got == ["Once ", "upon"]


@pytest.mark.anyio
async def test_connection_dropped_mid_body_is_a_disconnect(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=STORY[:-40], end="abrupt"))
    async with _provider(script) as provider:
        with pytest.raises(StreamDisconnectedError):
            await provider.chat(REQ)
    assert len(script.exchanges) == 1, "never retried after the stream started"


@pytest.mark.anyio
async def test_invalid_json_chunk(replay_server: ReplayServer) -> None:
    body = _sse(_text("Once ")) .replace(b"data: [DONE]", b'data: {"choices": [')
    script = replay_server.script(Reply(body=body + b"\n\n"))
    async with _provider(script) as provider:
        with pytest.raises(StreamProtocolError) as info:
            await provider.chat(REQ)
    assert info.value.raw == '{"choices": ['


@pytest.mark.anyio
async def test_429_with_retry_after_then_success(replay_server: ReplayServer) -> None:
    script = replay_server.script(
        Reply(status=429, body=b'{"error": {"message": "slow down"}}',
              headers={"content-type": "application/json", "retry-after": "3"}),
        Reply(body=STORY),
    )
    async with _provider(script) as provider:
        response = await provider.chat(REQ)
    assert response.content == "Once upon a time"
    assert provider.waits == [3.0]
    assert len(script.exchanges) == 2


@pytest.mark.anyio
async def test_500_then_success_backs_off(replay_server: ReplayServer) -> None:
    script = replay_server.script(
        Reply(status=500, body=b"upstream exploded", headers={"content-type": "text/plain"}),
        Reply(body=STORY),
    )
    async with _provider(script, retry=RetryPolicy(initial_backoff=0.5)) as provider:
        assert (await provider.chat(REQ)).content == "Once upon a time"
    assert len(provider.waits) == 1
    assert 0.25 <= provider.waits[0] <= 0.5


@pytest.mark.anyio
async def test_retry_after_longer_than_allowed_raises_at_once(replay_server: ReplayServer) -> None:
    script = replay_server.script(
        Reply(status=429, body=b"{}", headers={"retry-after": "3600"}), Reply(body=STORY)
    )
    async with _provider(script) as provider:
        with pytest.raises(RateLimitError) as info:
            await provider.chat(REQ)
    assert info.value.retry_after == 3600.0
    assert provider.waits == []


@pytest.mark.anyio
async def test_401_is_not_retried_and_never_shows_the_key(replay_server: ReplayServer) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}",
                                 "code": "invalid_api_key"}}).encode()
    script = replay_server.script(
        Reply(status=401, body=body, headers={"content-type": "application/json",
                                              "x-request-id": "req_1"}),
        Reply(body=STORY),
    )
    provider = _provider(script)
    async with provider:
        with pytest.raises(AuthenticationError) as info:
            await provider.chat(REQ)
    error = info.value
    assert error.status_code == 401
    assert error.request_id == "req_1"
    assert "invalid_api_key" in str(error)
    assert "REDACTED" in error.body
    assert KEY not in str(error) + repr(error) + error.body + repr(provider)
    assert script.exchanges[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(script.exchanges) == 1


@pytest.mark.anyio
async def test_stall_past_the_idle_timeout(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_sse(_text("Once "), done=False), end="stall"))
    got = []
    async with _provider(script, idle_timeout=0.3) as provider:
        with pytest.raises(ProviderTimeoutError) as info:
            await _collect(provider.stream_chat(REQ), got)
    assert info.value.phase == "idle"
    assert got == ["Once "]
    assert await _left(script)


@pytest.mark.anyio
async def test_breaking_out_early_closes_the_response(replay_server: ReplayServer) -> None:
    endless = _sse(*[_text(f"{i} ") for i in range(2000)])
    script = replay_server.script(Reply(body=endless, pause=0.002))
    async with _provider(script) as provider:
        async with provider.stream_chat(REQ) as stream:
            async for chunk in stream:
                if chunk.content == "2 ":
                    break
        assert await _left(script)
        await stream.aclose()  # idempotent


@pytest.mark.anyio
async def test_cancelling_the_consumer_closes_the_response(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_sse(_text("Once "), done=False), end="stall"))
    first = anyio.Event()

    async def consume(provider: OpenAIProvider) -> None:
        async for _ in provider.stream_chat(REQ):
            first.set()

    async with _provider(script) as provider, anyio.create_task_group() as tg:
        tg.start_soon(consume, provider)
        await first.wait()
        tg.cancel_scope.cancel()
    assert await _left(script)


@pytest.mark.anyio
async def test_unreachable_server_is_retried_then_a_connection_error() -> None:
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there now
        provider = _Recorder("m", base_url=f"http://127.0.0.1:{port}", api_key=KEY)
        async with provider:
            with pytest.raises(ProviderConnectionError) as info:
                await accumulate(provider.stream_chat(REQ))
    assert not isinstance(info.value, StreamDisconnectedError)
    assert len(provider.waits) == 2


@pytest.mark.anyio
async def test_plain_break_without_async_with_also_closes(replay_server: ReplayServer) -> None:
    # The guide's form: no `async with`. The dropped stream is finalized by the event loop's
    # async-generator hook, which closes the response.
    endless = _sse(*[_text(f"{i} ") for i in range(2000)])
    script = replay_server.script(Reply(body=endless, pause=0.002))
    async with _provider(script) as provider:
        async for chunk in provider.stream_chat(REQ):
            if chunk.content == "2 ":
                break
        assert await _left(script)


def test_leaving_a_sync_stream_early_closes_the_response(replay_server: ReplayServer) -> None:
    endless = _sse(*[_text(f"{i} ") for i in range(2000)])
    script = replay_server.script(Reply(body=endless, pause=0.002))
    provider = _provider(script)
    for chunk in provider.stream_chat_sync(REQ):
        if chunk.content == "2 ":
            break
    assert script.exchanges[0].client_left.wait(10)

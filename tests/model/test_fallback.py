"""FallbackProvider over real HTTP: it switches only before the first chunk, never after."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterable

import pytest

from chronos.errors import (
    AuthenticationError,
    ConfigurationError,
    ProviderConnectionError,
    ServerError,
    StreamDisconnectedError,
)
from chronos.model import (
    ChatRequest,
    ChatResponse,
    FallbackProvider,
    Message,
    OpenAIProvider,
    Provider,
    RetryPolicy,
)
from tests.model.replay import ReplayServer, Reply

REQ = ChatRequest(messages=[Message(role="user", content="Tell me a story about a robot")])
NO_RETRY = RetryPolicy(max_retries=0)


def _story(*texts: str, done: bool = True) -> bytes:
    events = [
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text},
                                                "finish_reason": None}]}
        for text in texts
    ]
    events.append({"id": "c1", "model": "m", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def _provider(base_url: str, model: str = "m") -> OpenAIProvider:
    return OpenAIProvider(model, base_url=base_url, api_key="sk-test-000000000000",
                          retry=NO_RETRY)


def _refused_url() -> str:
    # A port that was free a moment ago and has no listener now.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _collect_into(stream: AsyncIterable[ChatResponse], into: list[ChatResponse]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def _collect(provider: Provider) -> list[ChatResponse]:
    return [chunk async for chunk in provider.stream_chat(REQ)]


@pytest.mark.anyio
async def test_a_server_error_before_the_first_chunk_moves_on(
    replay_server: ReplayServer,
) -> None:
    first = replay_server.script(Reply(status=500, body=b'{"error": {"message": "boom"}}'))
    second = replay_server.script(Reply(body=_story("Once ", "upon")))
    async with FallbackProvider(_provider(first.base_url, "a"),
                                _provider(second.base_url, "b")) as provider:
        chunks = await _collect(provider)
        assert provider.model == "a"
    assert "".join(c.content for c in chunks) == "Once upon"
    assert (len(first.exchanges), len(second.exchanges)) == (1, 1)


@pytest.mark.anyio
async def test_a_refused_connection_moves_on(replay_server: ReplayServer) -> None:
    second = replay_server.script(Reply(body=_story("Hello")))
    async with FallbackProvider(_provider(_refused_url()),
                                _provider(second.base_url)) as provider:
        response = await provider.chat(REQ)
    assert response.content == "Hello"
    assert response.delta is False


@pytest.mark.anyio
async def test_a_failure_after_the_first_chunk_is_raised_not_switched(
    replay_server: ReplayServer,
) -> None:
    first = replay_server.script(Reply(body=_story("Once ", "upon ", "a time")[:150],
                                       end="abrupt"))
    second = replay_server.script(Reply(body=_story("Other story")))
    chunks: list[ChatResponse] = []
    async with FallbackProvider(_provider(first.base_url),
                                _provider(second.base_url)) as provider:
        with pytest.raises(StreamDisconnectedError):
            await _collect_into(provider.stream_chat(REQ), chunks)
    assert chunks
    assert "".join(c.content for c in chunks).startswith("Once")
    assert "Other" not in "".join(c.content for c in chunks)
    assert second.exchanges == []


@pytest.mark.anyio
async def test_when_all_fail_the_last_error_is_raised_with_the_others_chained(
    replay_server: ReplayServer,
) -> None:
    second = replay_server.script(Reply(status=503, body=b'{"error": {"message": "busy"}}'))
    async with FallbackProvider(_provider(_refused_url()),
                                _provider(second.base_url)) as provider:
        with pytest.raises(ServerError, match="busy") as info:
            await provider.chat(REQ)
    assert isinstance(info.value.__context__, ProviderConnectionError)


@pytest.mark.anyio
async def test_errors_outside_fallback_on_propagate_at_once(replay_server: ReplayServer) -> None:
    first = replay_server.script(Reply(status=401, body=b'{"error": {"message": "bad key"}}'))
    second = replay_server.script(Reply(body=_story("Hello")))
    provider = FallbackProvider(_provider(first.base_url), _provider(second.base_url),
                                fallback_on=(ServerError, ProviderConnectionError))
    async with provider:
        with pytest.raises(AuthenticationError):
            await provider.chat(REQ)
    assert second.exchanges == []


@pytest.mark.anyio
async def test_breaking_early_closes_the_response(replay_server: ReplayServer) -> None:
    texts = [f"word{i} " for i in range(400)]
    first = replay_server.script(Reply(body=_story(*texts), pause=0.002, max_piece=64))
    provider = FallbackProvider(_provider(first.base_url))
    async with provider, provider.stream_chat(REQ) as stream:
        async for _ in stream:
            break
    assert first.exchanges[0].client_left.wait(10)


def test_the_sync_twin(replay_server: ReplayServer) -> None:
    first = replay_server.script(Reply(status=502, body=b""))
    second = replay_server.script(Reply(body=_story("Hi ", "there")))
    provider = FallbackProvider(_provider(first.base_url), _provider(second.base_url))
    assert isinstance(provider, Provider)
    assert "".join(c.content for c in provider.stream_chat_sync(REQ)) == "Hi there"


def test_it_needs_a_provider() -> None:
    with pytest.raises(ConfigurationError):
        FallbackProvider()

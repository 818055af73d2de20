"""A provider that stops sending: after the headers, after some chunks, before the headers.

Every case runs against a real HTTP server on 127.0.0.1 (the replay server, or a raw socket
server for the response that never starts). What must hold: the stream ends with
`ProviderTimeoutError` once `idle_timeout` passes without a byte (never a hang, never a
silently truncated response), the connection is closed, and a consumer that is cancelled
while the server is silent closes the connection too. Bytes that keep arriving, however
slowly, are not a stall: the timeout is per read, not per response.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from chronos import graph
from chronos.errors import NodeError, ProviderTimeoutError, ServerError
from chronos.model import (
    AnthropicProvider,
    AzureOpenAIProvider,
    ChatRequest,
    ChatResponse,
    CohereProvider,
    GeminiProvider,
    Message,
    OllamaProvider,
    OpenAIProvider,
    OpenAIResponsesProvider,
    RetryPolicy,
)
from chronos.model._provider import HTTPProvider
from chronos.store import MemoryStore
from tests.model.recordings import PROVIDERS, Recording, load_all
from tests.model.replay import ReplayServer, Reply, Script

KEY = "sk-stall-test-0123456789"
REQ = ChatRequest(messages=[Message(role="user", content="Tell me a story about a robot")])
IDLE = 0.3

# One factory per vendor, pointed at a base URL; the content type is what the vendor streams.
VENDORS: dict[str, tuple[Callable[[str], HTTPProvider], str]] = {
    "openai": (lambda url: OpenAIProvider("m", base_url=url, api_key=KEY, idle_timeout=IDLE),
               "text/event-stream"),
    "azure": (lambda url: AzureOpenAIProvider("dep", endpoint=url, api_key=KEY,
                                              idle_timeout=IDLE), "text/event-stream"),
    "responses": (lambda url: OpenAIResponsesProvider("m", base_url=url, api_key=KEY,
                                                      idle_timeout=IDLE), "text/event-stream"),
    "anthropic": (lambda url: AnthropicProvider("m", base_url=url, api_key=KEY,
                                                idle_timeout=IDLE), "text/event-stream"),
    "gemini": (lambda url: GeminiProvider("m", base_url=url, api_key=KEY, idle_timeout=IDLE),
               "text/event-stream"),
    "cohere": (lambda url: CohereProvider("m", base_url=url, api_key=KEY, idle_timeout=IDLE),
               "text/event-stream"),
    "ollama": (lambda url: OllamaProvider("m", base_url=url, idle_timeout=IDLE),
               "application/x-ndjson"),
}


def _sse(*chunks: Any, done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(events) + ("data: [DONE]\n\n" if done else "")).encode()


def _text(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "model": "m", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


async def _collect(stream: AsyncIterable[ChatResponse], into: list[ChatResponse]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def _left(script: Script, index: int = 0) -> bool:
    """Whether the client closed exchange `index`'s connection (waiting up to 10 s)."""
    event = script.exchanges[index].client_left
    return await anyio.to_thread.run_sync(event.wait, 10)


@pytest.mark.anyio
@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_headers_then_silence_times_out(replay_server: ReplayServer, vendor: str) -> None:
    make, content_type = VENDORS[vendor]
    script = replay_server.script(
        Reply(body=b"", headers={"content-type": content_type}, end="stall")
    )
    got: list[ChatResponse] = []
    started = time.monotonic()
    async with make(script.base_url) as provider:
        with anyio.fail_after(10), pytest.raises(ProviderTimeoutError) as info:
            await _collect(provider.stream_chat(REQ), got)
    waited = time.monotonic() - started
    assert info.value.phase == "idle"
    assert info.value.provider == provider.name
    assert got == []
    assert waited >= IDLE * 0.9, "gave up before the idle timeout"
    assert await _left(script), "the stalled connection was left open"
    assert len(script.exchanges) == 1, "a stream that had started must not be retried"


def _one_recording_per_api() -> list[Recording]:
    chosen: dict[str, Recording] = {}
    for recording in load_all():
        if recording.api in PROVIDERS and recording.status == 200 and len(recording.body) > 200:
            chosen.setdefault(recording.api, recording)
    return [chosen[api] for api in sorted(chosen)]


@pytest.mark.anyio
@pytest.mark.parametrize("recording", _one_recording_per_api(), ids=lambda r: r.api)
async def test_real_stream_cut_in_half_then_silence(
    replay_server: ReplayServer, recording: Recording
) -> None:
    # Half a real recording, then nothing: what arrived is delivered, then the timeout.
    body = recording.body[: len(recording.body) // 2]
    script = replay_server.script(
        Reply(body=body, headers={"content-type": recording.content_type}, end="stall")
    )
    provider = PROVIDERS[recording.api](recording, script.base_url)
    provider.timeout = httpx.Timeout(IDLE, connect=5.0)
    got: list[ChatResponse] = []
    async with provider:
        with anyio.fail_after(10), pytest.raises(ProviderTimeoutError) as info:
            await _collect(provider.stream_chat(REQ), got)
    assert info.value.phase == "idle"
    assert "in the middle of the stream" in str(info.value)
    assert await _left(script)


@pytest.mark.anyio
async def test_slow_but_steady_bytes_are_not_a_stall(replay_server: ReplayServer) -> None:
    # Keep-alive comments every ~IDLE/3 for several idle timeouts: the response completes.
    body = b": keep-alive\n\n" * 6 + _sse(_text("Once "), _text("upon a time", "stop"))
    script = replay_server.script(Reply(body=body, max_piece=48, pause=IDLE / 3))
    got: list[ChatResponse] = []
    started = time.monotonic()
    async with OpenAIProvider("m", base_url=script.base_url, api_key=KEY,
                              idle_timeout=IDLE) as provider:
        with anyio.fail_after(30):
            await _collect(provider.stream_chat(REQ), got)
    assert time.monotonic() - started > 2 * IDLE, "the test did not outlast the idle timeout"
    assert "".join(c.content for c in got) == "Once upon a time"


@asynccontextmanager
async def _mute_server(prefix: bytes = b"") -> AsyncIterator[tuple[str, list[anyio.Event]]]:
    """A raw HTTP server that reads each request, sends `prefix`, then never sends more.

    Yields its URL and one event per connection, set when the client closes it.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    closed: list[anyio.Event] = []

    async def handle(client: anyio.abc.SocketStream) -> None:
        gone = anyio.Event()
        closed.append(gone)
        async with client:
            received = b""
            try:
                while b"\r\n\r\n" not in received:
                    received += await client.receive()
                if prefix:
                    await client.send(prefix)
                while True:
                    await client.receive()  # nothing more will come; EOF means it left
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                gone.set()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}", closed
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_silence_before_the_headers_times_out_without_retrying() -> None:
    async with _mute_server() as (url, closed):
        provider = OpenAIProvider("m", base_url=url, api_key=KEY, idle_timeout=IDLE)
        async with provider:
            with anyio.fail_after(10), pytest.raises(ProviderTimeoutError) as info:
                await provider.chat(REQ)
        assert info.value.phase == "idle"
        assert "waiting for the response" in str(info.value)
        with anyio.fail_after(10):
            await closed[0].wait()
        assert len(closed) == 1, "a request the server may be working on was sent again"


@pytest.mark.anyio
async def test_half_a_status_line_then_silence() -> None:
    async with _mute_server(b"HTTP/1.1 200 OK\r\ncontent-type: text/ev") as (url, closed):
        async with OpenAIProvider("m", base_url=url, api_key=KEY, idle_timeout=IDLE) as provider:
            with anyio.fail_after(10), pytest.raises(ProviderTimeoutError):
                await provider.chat(REQ)
        with anyio.fail_after(10):
            await closed[0].wait()


@pytest.mark.anyio
async def test_error_status_whose_body_stalls(replay_server: ReplayServer) -> None:
    # A 503 whose body never finishes: still a typed ServerError (body unread), retried as
    # a 503 is, and every stalled connection closed.
    stalled = Reply(status=503, body=b'{"error": {"mess', end="stall",
                    headers={"content-type": "application/json"})
    script = replay_server.script(stalled, stalled, stalled)
    async with OpenAIProvider("m", base_url=script.base_url, api_key=KEY, idle_timeout=IDLE,
                              retry=RetryPolicy(max_retries=2, initial_backoff=0.01)) as provider:
        with anyio.fail_after(20), pytest.raises(ServerError) as info:
            await provider.chat(REQ)
    assert info.value.status_code == 503
    assert len(script.exchanges) == 3
    for index in range(3):
        assert await _left(script, index)


def test_sync_stream_stall(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_sse(_text("Once "), done=False), end="stall"))
    provider = OpenAIProvider("m", base_url=script.base_url, api_key=KEY, idle_timeout=IDLE)
    got: list[str] = []

    def consume() -> None:
        for chunk in provider.stream_chat_sync(REQ):
            got.append(chunk.content)

    with pytest.raises(ProviderTimeoutError):
        consume()
    assert got == ["Once "]
    assert script.exchanges[0].client_left.wait(10)


@pytest.mark.anyio
@pytest.mark.parametrize("after_chunk", [False, True], ids=["after-headers", "after-a-chunk"])
async def test_cancelling_a_consumer_of_a_silent_stream_closes_it(
    replay_server: ReplayServer, after_chunk: bool
) -> None:
    # The default idle timeout (120 s) would not fire during the test: only the cancel can.
    body = _sse(_text("Once "), done=False) if after_chunk else b""
    script = replay_server.script(Reply(body=body, end="stall"))
    waiting = anyio.Event()

    async def consume(provider: OpenAIProvider) -> None:
        if not after_chunk:
            waiting.set()
        async for _ in provider.stream_chat(REQ):
            waiting.set()

    async with OpenAIProvider("m", base_url=script.base_url, api_key=KEY) as provider:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume, provider)
                await waiting.wait()
                while not script.exchanges:  # noqa: ASYNC110 - the server is in another thread
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)  # the response headers are in, the body is silent
                tg.cancel_scope.cancel()
        assert await _left(script)


@pytest.mark.anyio
async def test_a_graph_node_on_a_stalled_provider_fails_the_run(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(
        Reply(body=_sse(_text("Once "), _text("upon "), done=False), end="stall")
    )
    provider = OpenAIProvider("m", base_url=script.base_url, api_key=KEY, idle_timeout=IDLE)

    async def chat(state: dict[str, Any]) -> dict[str, Any]:
        response = await graph.stream_chat(provider, REQ)
        return {"story": response.content}

    g = graph.StateGraph("stall").add_node("chat", chat)
    g.set_entry_point("chat").set_finish_point("chat")
    store = MemoryStore()
    runner = graph.Runner(g.compile(), store)
    events = runner.stream()
    seen: list[graph.StreamEvent] = []

    async def consume() -> None:
        async for event in events:
            seen.append(event)

    async with provider:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                with pytest.raises(NodeError) as info:
                    await runner.run("s", {"story": ""})
    assert isinstance(info.value.__cause__, ProviderTimeoutError)
    tokens = [e.data.content for e in seen if e.type == "token"]
    assert tokens == ["Once ", "upon "]
    assert seen[-1].type == "error"
    latest = await store.latest("s")
    assert latest is not None
    assert latest.status == "failed"
    assert latest.next == ("chat",)
    assert await _left(script)

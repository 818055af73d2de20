"""What the Anthropic provider sends, and stream cases the recordings do not cover."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

import pytest

from chronos.errors import ProviderStreamError, StreamProtocolError
from chronos.model import (
    AnthropicProvider,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Provider,
    RetryPolicy,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from tests.model.replay import ReplayServer, Reply

KEY = "sk-ant-test-0123456789"


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


START = {"type": "message_start", "message": {
    "id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10, "output_tokens": 1,
                                                  "cache_read_input_tokens": 5}}}
STOP = {"type": "message_stop"}


def _end(reason: str, output_tokens: int = 7) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": reason},
            "usage": {"output_tokens": output_tokens}}


def _block(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


REQ = ChatRequest(messages=[Message(role="user", content="Hi")])


async def _collect(stream: AsyncIterable[ChatResponse], into: list[ChatResponse]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def _run(server: ReplayServer, body: bytes, req: ChatRequest | None = None,
               **options: Any) -> tuple[list[ChatResponse], dict[str, Any], dict[str, str]]:
    script = server.script(Reply(body=body))
    chunks: list[ChatResponse] = []
    provider = AnthropicProvider("claude-x", base_url=script.base_url + "/v1", api_key=KEY,
                                 retry=RetryPolicy(max_retries=0), **options)
    async with provider:
        async for chunk in provider.stream_chat(req or ChatRequest(messages=[
                Message(role="user", content="Hi")])):
            chunks.append(chunk)
    exchange = script.exchanges[0]
    assert exchange.path.startswith(script.prefix + "/v1/messages")
    return chunks, json.loads(exchange.body), exchange.headers


@pytest.mark.anyio
async def test_request_body_and_headers(replay_server: ReplayServer) -> None:
    req = ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="system", content="Be kind."),
            Message(role="user", content=[TextPart("What is this?"),
                                          ImagePart(data="AAAA", media_type="image/jpeg"),
                                          ImagePart(url="https://example.com/a.png")]),
            Message(role="assistant", content="Let me look.",
                    tool_calls=[ToolCall("t1", "look", '{"x": 1}'), ToolCall("t2", "zoom")]),
            Message(role="tool", tool_call_id="t1", content="a robot"),
            Message(role="tool", tool_call_id="t2", content="closer"),
        ],
        temperature=0.5, top_p=0.9, stop=["END"], metadata={"user_id": "u1", "other": "x"},
        tools=[ToolDefinition("look", "Look at something",
                              {"type": "object", "properties": {"x": {"type": "integer"}}})],
    )
    body = _sse(START, _block(0, {"type": "text", "text": ""}), _delta(0, {
        "type": "text_delta", "text": "Hi"}), _stop(0), _end("end_turn"), STOP)
    _, sent, headers = await _run(replay_server, body, req)
    assert headers["x-api-key"] == KEY
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert sent["system"] == "Be brief.\n\nBe kind."
    assert sent["max_tokens"] == 4096
    assert sent["stream"] is True
    assert sent["stop_sequences"] == ["END"]
    assert sent["metadata"] == {"user_id": "u1"}
    assert (sent["temperature"], sent["top_p"]) == (0.5, 0.9)
    assert sent["tools"] == [{"name": "look", "description": "Look at something",
                              "input_schema": {"type": "object",
                                               "properties": {"x": {"type": "integer"}}}}]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    user, assistant, results = sent["messages"]
    assert user["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}
    assert user["content"][2] == {"type": "image", "source": {
        "type": "url", "url": "https://example.com/a.png"}}
    assert assistant["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}},
        {"type": "tool_use", "id": "t2", "name": "zoom", "input": {}},
    ]
    # Parallel tool results go back in one user turn.
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "a robot"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "closer"},
    ]


@pytest.mark.anyio
async def test_betas_and_thinking(replay_server: ReplayServer) -> None:
    body = _sse(START, _end("end_turn"), STOP)
    script = replay_server.script(Reply(body=body))
    async with AnthropicProvider("claude-x", base_url=script.base_url, api_key=KEY,
                                 betas=["a-1", "b-2"], thinking_budget=1024) as provider:
        await provider.chat(ChatRequest(messages=[Message(role="user", content="Hi")],
                                        max_tokens=5))
    exchange = script.exchanges[0]
    assert exchange.path == script.prefix + "/messages?beta=true"
    assert exchange.headers["anthropic-beta"] == "a-1,b-2"
    sent = json.loads(exchange.body)
    assert sent["max_tokens"] == 5
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.anyio
async def test_thinking_tools_and_server_tools(replay_server: ReplayServer) -> None:
    body = _sse(
        START,
        {"type": "ping"},
        _block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "Hmm."}),
        _delta(0, {"type": "signature_delta", "signature": "c2ln"}),
        _stop(0),
        _block(1, {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}),
        _delta(1, {"type": "input_json_delta", "partial_json": '{"query": "x"}'}),
        _stop(1),
        _block(2, {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []}),
        _stop(2),
        _block(3, {"type": "text", "text": ""}),
        _delta(3, {"type": "text_delta", "text": "Found it."}),
        _delta(3, {"type": "citations_delta", "citation": {"type": "web_search_result_location"}}),
        _stop(3),
        _block(4, {"type": "tool_use", "id": "t1", "name": "look", "input": {}}),
        _delta(4, {"type": "input_json_delta", "partial_json": '{"x"'}),
        _delta(4, {"type": "input_json_delta", "partial_json": ": 1}"}),
        _stop(4),
        _block(5, {"type": "tool_use", "id": "t2", "name": "noargs", "input": {}}),
        _delta(5, {"type": "input_json_delta", "partial_json": ""}),
        _stop(5),
        # A gateway that sends the whole input in the start block and no deltas.
        _block(6, {"type": "tool_use", "id": "t3", "name": "whole", "input": {"y": [1, 2]}}),
        _stop(6),
        _end("tool_use", 42),
        STOP,
    )
    chunks, _, _ = await _run(replay_server, body)
    assert "".join(c.content for c in chunks) == "Found it."
    assert "".join(c.reasoning for c in chunks) == "Hmm."
    calls = [call for c in chunks for call in c.tool_calls]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("t1", "look", {"x": 1}), ("t2", "noargs", {}), ("t3", "whole", {"y": [1, 2]})]
    # Each call is released at its content_block_stop, before the message ends.
    assert chunks[-1].tool_calls == ()
    last = chunks[-1]
    assert (last.stop_reason, last.raw_stop_reason) == (StopReason.TOOL_CALL, "tool_use")
    assert last.usage is not None
    assert dict(last.usage.raw) == {"input_tokens": 10, "output_tokens": 42,
                                    "cache_read_input_tokens": 5}
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.total_tokens) == (
        15, 42, 57)
    assert (last.id, last.model) == ("msg_1", "claude-x")


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [("end_turn", StopReason.END), ("stop_sequence", StopReason.END),
     ("max_tokens", StopReason.MAX_TOKENS), ("tool_use", StopReason.TOOL_CALL),
     ("refusal", StopReason.CONTENT_FILTER), ("pause_turn", StopReason.OTHER),
     ("something_new", StopReason.OTHER)],
)
@pytest.mark.anyio
async def test_stop_reasons(replay_server: ReplayServer, raw: str, mapped: StopReason) -> None:
    chunks, _, _ = await _run(replay_server, _sse(START, _end(raw), STOP))
    assert (chunks[-1].raw_stop_reason, chunks[-1].stop_reason) == (raw, mapped)


@pytest.mark.anyio
async def test_an_error_event_mid_stream_raises_after_the_text(
    replay_server: ReplayServer,
) -> None:
    body = _sse(START, _block(0, {"type": "text", "text": ""}),
                _delta(0, {"type": "text_delta", "text": "Partial"}),
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    script = replay_server.script(Reply(body=body))
    chunks: list[ChatResponse] = []
    async with AnthropicProvider("claude-x", base_url=script.base_url, api_key=KEY) as provider:
        with pytest.raises(ProviderStreamError, match="Overloaded") as info:
            await _collect(provider.stream_chat(REQ), chunks)
    assert info.value.code == "overloaded_error"
    assert "".join(c.content for c in chunks) == "Partial"
    assert KEY not in repr(info.value) + str(info.value)


@pytest.mark.anyio
async def test_a_stream_without_message_stop_is_truncated(replay_server: ReplayServer) -> None:
    body = _sse(START, _block(0, {"type": "text", "text": ""}),
                _delta(0, {"type": "text_delta", "text": "Once"}))
    with pytest.raises(StreamProtocolError, match="truncated"):
        await _run(replay_server, body)


def test_it_is_a_provider_and_its_repr_hides_the_key() -> None:
    provider = AnthropicProvider(api_key=KEY)
    assert isinstance(provider, Provider)
    assert provider.name == "anthropic"
    assert KEY not in repr(provider)

"""What the OpenAI and Azure providers send, and their sync twins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos.errors import ConfigurationError
from chronos.model import (
    AzureOpenAIProvider,
    ChatRequest,
    ImagePart,
    Message,
    OpenAIProvider,
    OpenAIResponsesProvider,
    Provider,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from tests.model.replay import ReplayServer, Reply

STORY = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Once upon"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" a time"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.anyio
async def test_request_body_and_headers(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=STORY))
    req = ChatRequest(
        model="other-model",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=[TextPart("What is this?"),
                                          ImagePart(data="AAAA", media_type="image/jpeg")]),
            Message(role="assistant", tool_calls=[ToolCall("c1", "look", '{"x": 1}')]),
            Message(role="tool", tool_call_id="c1", content="a robot"),
        ],
        max_tokens=50,
        temperature=0.0,
        stop=["END"],
        seed=7,
        tools=[ToolDefinition("look", "Look at something")],
        response_format={"type": "json_object"},
    )
    async with OpenAIProvider("gpt-x", base_url=script.base_url + "/v1/", api_key="k-1") as p:
        assert (await p.chat(req)).content == "Once upon a time"
    exchange = script.exchanges[0]
    assert exchange.path == script.prefix + "/v1/chat/completions"
    assert exchange.headers["authorization"] == "Bearer k-1"
    assert exchange.headers["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(exchange.body)
    assert body["model"] == "other-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.0
    assert body["seed"] == 7
    assert body["stop"] == ["END"]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    assert body["messages"][2]["tool_calls"][0]["function"] == {
        "name": "look", "arguments": '{"x": 1}'}
    assert body["messages"][2]["content"] is None
    assert body["messages"][3]["tool_call_id"] == "c1"
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


@pytest.mark.anyio
async def test_azure_deployment_url_api_version_and_key_header(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-1")
    script = replay_server.script(Reply(body=STORY))
    provider = AzureOpenAIProvider("my-gpt", endpoint=script.base_url, api_version="2024-06-01")
    async with provider:
        assert (await provider.chat(ChatRequest(messages=[Message("user", "hi")]))).content
    exchange = script.exchanges[0]
    assert exchange.path == (
        script.prefix + "/openai/deployments/my-gpt/chat/completions?api-version=2024-06-01"
    )
    assert exchange.headers["api-key"] == "azure-key-1"
    assert "authorization" not in exchange.headers
    assert "azure-key-1" not in repr(provider)


def test_a_missing_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-x")


@pytest.mark.anyio
async def test_a_server_of_ones_own_needs_no_key(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    script = replay_server.script(Reply(body=STORY))
    async with OpenAIProvider("local", base_url=script.base_url + "/v1") as provider:
        assert (await provider.chat(ChatRequest([Message("user", "hi")]))).content == (
            "Once upon a time"
        )
    assert "authorization" not in script.exchanges[0].headers


def test_sync_twins(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=STORY), Reply(body=STORY))
    provider = OpenAIProvider("m", base_url=script.base_url, api_key="k")
    assert isinstance(provider, Provider)
    req = ChatRequest(messages=[Message("user", "hi")])
    assert [c.content for c in provider.stream_chat_sync(req) if c.content] == [
        "Once upon", " a time"]
    assert provider.chat_sync(req).content == "Once upon a time"


RESPONSES_STORY = (
    b"event: response.created\n"
    b'data: {"type":"response.created","response":{"id":"r1","model":"m"}}\n\n'
    b'data: {"type":"response.output_item.added","item":{"type":"function_call","id":"fc_1",'
    b'"call_id":"call_9","name":"look","arguments":""}}\n\n'
    b'data: {"type":"response.function_call_arguments.delta","item_id":"fc_1",'
    b'"delta":"{\\"x\\""}\n\n'
    b'data: {"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":": 1}"}\n\n'
    b'data: {"type":"response.output_item.done","item":{"type":"function_call","id":"fc_1",'
    b'"call_id":"call_9","name":"look","arguments":"{\\"x\\": 1}"}}\n\n'
    b'data: {"type":"response.completed","response":{"id":"r1","model":"m","status":"completed",'
    b'"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}}\n\n'
)


@pytest.mark.anyio
async def test_responses_api_request_and_tool_call(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=RESPONSES_STORY))
    req = ChatRequest(
        messages=[
            Message(role="user", content="Look"),
            Message(role="assistant", tool_calls=[ToolCall("call_1", "look", "{}")]),
            Message(role="tool", tool_call_id="call_1", content="a robot"),
        ],
        max_tokens=20,
        tools=[ToolDefinition("look")],
    )
    async with OpenAIResponsesProvider("m", base_url=script.base_url, api_key="k") as provider:
        chunks = [chunk async for chunk in provider.stream_chat(req)]
    calls = [c for chunk in chunks for c in chunk.tool_calls]
    assert calls == [ToolCall("call_9", "look", '{"x": 1}')]
    assert chunks[-1].stop_reason is StopReason.TOOL_CALL
    assert chunks[-1].usage is not None
    body: dict[str, Any] = json.loads(script.exchanges[0].body)
    assert script.exchanges[0].path == script.prefix + "/responses"
    assert body["input"] == [
        {"role": "user", "content": "Look"},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a robot"},
    ]
    assert body["max_output_tokens"] == 20
    assert body["stream"] is True
    assert body["tools"][0]["name"] == "look"


def _chunk_line(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    chunk = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "model": "gpt-x",
             "choices": [{"index": index, "delta": delta, "logprobs": None,
                          "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


# A refusal as OpenAI streams it under structured outputs: `content` null, `refusal` deltas.
REFUSAL = (
    _chunk_line({"role": "assistant", "content": None, "refusal": ""})
    + _chunk_line({"refusal": "I'm sorry, I can't"})
    + _chunk_line({"refusal": " help with that."})
    + _chunk_line({}, "stop")
    + b"data: [DONE]\n\n"
)


@pytest.mark.anyio
async def test_a_refusal_is_kept_apart_from_content_and_ends_as_content_filter(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(Reply(body=REFUSAL), Reply(body=REFUSAL))
    req = ChatRequest(messages=[Message(role="user", content="Something forbidden")])
    async with OpenAIProvider("gpt-x", base_url=script.base_url, api_key="k") as provider:
        chunks = [chunk async for chunk in provider.stream_chat(req)]
        whole = await provider.chat(req)
    assert [c.refusal for c in chunks if c.refusal] == ["I'm sorry, I can't", " help with that."]
    assert all(c.content == "" for c in chunks)
    assert (chunks[-1].stop_reason, chunks[-1].raw_stop_reason) == (
        StopReason.CONTENT_FILTER, "stop")
    assert whole.refusal == "I'm sorry, I can't help with that."
    assert whole.content == ""
    assert whole.stop_reason is StopReason.CONTENT_FILTER


@pytest.mark.anyio
async def test_choices_other_than_the_first_are_not_mixed_in(
    replay_server: ReplayServer,
) -> None:
    body = (
        _chunk_line({"role": "assistant", "content": "first"}, index=0)
        + _chunk_line({"role": "assistant", "content": "SECOND"}, index=1)
        + _chunk_line({"tool_calls": [{"index": 0, "id": "c9", "type": "function",
                                       "function": {"name": "f", "arguments": "{}"}}]},
                      index=1)
        + _chunk_line({}, "stop", index=0)
        + _chunk_line({}, "tool_calls", index=1)
        + b"data: [DONE]\n\n"
    )
    script = replay_server.script(Reply(body=body))
    req = ChatRequest(messages=[Message(role="user", content="Hi")])
    async with OpenAIProvider("gpt-x", base_url=script.base_url, api_key="k") as provider:
        whole = await provider.chat(req)
    assert (whole.content, whole.tool_calls, whole.raw_stop_reason) == ("first", (), "stop")


def _responses_event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


@pytest.mark.anyio
async def test_responses_api_refusal(replay_server: ReplayServer) -> None:
    body = (
        _responses_event("response.created", response={"id": "resp_1", "model": "m"})
        + _responses_event("response.refusal.delta", item_id="msg_1", delta="I can't")
        + _responses_event("response.refusal.delta", item_id="msg_1", delta=" do that.")
        + _responses_event("response.completed", response={"id": "resp_1", "model": "m",
                                                           "status": "completed"})
    )
    script = replay_server.script(Reply(body=body))
    req = ChatRequest(messages=[Message(role="user", content="Something forbidden")])
    async with OpenAIResponsesProvider("m", base_url=script.base_url, api_key="k") as provider:
        whole = await provider.chat(req)
    assert (whole.refusal, whole.content) == ("I can't do that.", "")
    assert (whole.stop_reason, whole.raw_stop_reason) == (StopReason.CONTENT_FILTER, "completed")

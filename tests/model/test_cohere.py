"""What the Cohere provider sends, and v2 stream cases the recordings do not cover."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos.errors import StreamProtocolError
from chronos.model import (
    ChatRequest,
    ChatResponse,
    CohereProvider,
    ImagePart,
    Message,
    RetryPolicy,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from tests.model.replay import ReplayServer, Reply

KEY = "co-test-0123456789abcdef"
REQ = ChatRequest(messages=[Message(role="user", content="Hi")])


def _sse(*events: dict[str, Any], done: bool = True) -> bytes:
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def _content(index: int, **content: str) -> dict[str, Any]:
    return {"type": "content-delta", "index": index,
            "delta": {"message": {"content": content}}}


def _end(reason: str) -> dict[str, Any]:
    return {"type": "message-end", "delta": {"finish_reason": reason, "usage": {
        "billed_units": {"input_tokens": 3, "output_tokens": 5},
        "tokens": {"input_tokens": 30, "output_tokens": 6}}}}


START = {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}}


async def _stream(server: ReplayServer, body: bytes,
                  req: ChatRequest = REQ) -> tuple[list[ChatResponse], Any]:
    script = server.script(Reply(body=body))
    chunks: list[ChatResponse] = []
    provider = CohereProvider("command-x", base_url=script.base_url + "/v2", api_key=KEY,
                              retry=RetryPolicy(max_retries=0))
    async with provider:
        async for chunk in provider.stream_chat(req):
            chunks.append(chunk)
    return chunks, script.exchanges[0]


@pytest.mark.anyio
async def test_request_body_and_headers(replay_server: ReplayServer) -> None:
    req = ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=[TextPart("What is this?"),
                                          ImagePart(url="https://example.com/a.png")]),
            Message(role="assistant", tool_calls=[ToolCall("c1", "look", '{"x": 1}')]),
            Message(role="tool", tool_call_id="c1", content="a robot"),
        ],
        max_tokens=50, temperature=0.0, top_p=0.5, stop=["END"],
        tools=[ToolDefinition("look", "Look at something")],
        response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    )
    _, exchange = await _stream(replay_server, _sse(START, _end("COMPLETE")), req)
    assert exchange.path.endswith("/v2/chat")
    assert exchange.headers["authorization"] == f"Bearer {KEY}"
    sent = json.loads(exchange.body)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "look", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a robot"},
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["p"], sent["stop_sequences"]) == (
        50, 0.0, 0.5, ["END"])
    assert sent["response_format"] == {"type": "json_object",
                                       "json_schema": {"type": "object"}}
    assert sent["tools"][0]["function"]["name"] == "look"


@pytest.mark.anyio
async def test_thinking_plan_text_and_parallel_tools(replay_server: ReplayServer) -> None:
    def call(index: int, id: str, name: str) -> dict[str, Any]:
        return {"type": "tool-call-start", "index": index, "delta": {"message": {
            "tool_calls": {"id": id, "type": "function",
                           "function": {"name": name, "arguments": ""}}}}}

    def args(index: int, text: str) -> dict[str, Any]:
        return {"type": "tool-call-delta", "index": index, "delta": {"message": {
            "tool_calls": {"function": {"arguments": text}}}}}

    body = _sse(
        START,
        {"type": "content-start", "index": 0,
         "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}},
        _content(0, thinking="Think. "),
        {"type": "content-end", "index": 0},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look."}}},
        _content(1, text="Looking"),
        {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {}}}},
        call(0, "look_1", "look"), args(0, '{"x"'), args(0, ": 1}"),
        call(1, "noargs_1", "noargs"),
        {"type": "tool-call-end", "index": 1},
        {"type": "tool-call-end", "index": 0},
        _end("TOOL_CALL"),
    )
    chunks, _ = await _stream(replay_server, body)
    assert "".join(c.reasoning for c in chunks) == "Think. I will look."
    assert "".join(c.content for c in chunks) == "Looking"
    got = [call for c in chunks for call in c.tool_calls]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in got] == [
        ("noargs_1", "noargs", {}), ("look_1", "look", {"x": 1})]
    last = chunks[-1]
    assert (last.raw_stop_reason, last.stop_reason) == ("TOOL_CALL", StopReason.TOOL_CALL)
    assert last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (30, 6)
    assert last.id == "m1"


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [("COMPLETE", StopReason.END), ("MAX_TOKENS", StopReason.MAX_TOKENS),
     ("STOP_SEQUENCE", StopReason.END), ("ERROR", StopReason.OTHER)],
)
@pytest.mark.anyio
async def test_finish_reasons(replay_server: ReplayServer, raw: str, mapped: StopReason) -> None:
    chunks, _ = await _stream(replay_server, _sse(START, _end(raw)))
    assert (chunks[-1].raw_stop_reason, chunks[-1].stop_reason) == (raw, mapped)


@pytest.mark.anyio
async def test_message_end_without_done_is_complete_but_nothing_is_not(
    replay_server: ReplayServer,
) -> None:
    chunks, _ = await _stream(replay_server, _sse(START, _content(0, text="Hi"),
                                                  _end("COMPLETE"), done=False))
    assert chunks[-1].stop_reason is StopReason.END
    with pytest.raises(StreamProtocolError, match="truncated"):
        await _stream(replay_server, _sse(START, _content(0, text="Hi"), done=False))

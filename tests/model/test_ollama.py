"""What the native Ollama provider sends, and NDJSON cases the recordings do not cover."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos.errors import ProviderStreamError, StreamProtocolError
from chronos.model import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    OllamaProvider,
    RetryPolicy,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from tests.model.replay import ReplayServer, Reply

NDJSON = {"content-type": "application/x-ndjson"}
REQ = ChatRequest(messages=[Message(role="user", content="Hi")])


def _lines(*lines: dict[str, Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _say(text: str = "", **message: Any) -> dict[str, Any]:
    return {"model": "qwen3", "message": {"role": "assistant", "content": text, **message},
            "done": False}


DONE = {"model": "qwen3", "message": {"role": "assistant", "content": ""}, "done": True,
        "done_reason": "stop", "total_duration": 900, "prompt_eval_count": 4,
        "eval_count": 6, "eval_duration": 500}


async def _stream(server: ReplayServer, body: bytes, req: ChatRequest = REQ,
                  **options: Any) -> tuple[list[ChatResponse], Any]:
    script = server.script(Reply(body=body, headers=NDJSON))
    chunks: list[ChatResponse] = []
    provider = OllamaProvider("qwen3", base_url=script.base_url,
                              retry=RetryPolicy(max_retries=0), **options)
    async with provider:
        async for chunk in provider.stream_chat(req):
            chunks.append(chunk)
    return chunks, script.exchanges[0]


@pytest.mark.anyio
async def test_request_body(replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    req = ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=[TextPart("What is this?"), ImagePart(data="AAAA")]),
            Message(role="assistant", tool_calls=[ToolCall("c1", "look", '{"x": 1}')]),
            Message(role="tool", tool_call_id="c1", content="a robot"),
        ],
        max_tokens=50, temperature=0.0, seed=7, stop=["END"],
        tools=[ToolDefinition("look", "Look at something")],
        response_format={"type": "json_object"},
    )
    _, exchange = await _stream(replay_server, _lines(_say("ok"), DONE), req, think=True,
                                keep_alive="5m")
    assert exchange.path.endswith("/api/chat")
    assert "authorization" not in exchange.headers
    sent = json.loads(exchange.body)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?", "images": ["AAAA"]},
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "look", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "a robot", "tool_name": "look"},
    ]
    assert sent["options"] == {"num_predict": 50, "temperature": 0.0, "seed": 7,
                               "stop": ["END"]}
    assert (sent["format"], sent["think"], sent["keep_alive"], sent["stream"]) == (
        "json", True, "5m", True)
    assert sent["tools"][0]["function"]["name"] == "look"


@pytest.mark.anyio
async def test_thinking_tool_calls_and_the_done_line(replay_server: ReplayServer) -> None:
    calls = [{"function": {"name": "look", "arguments": {"x": 1}}},
             {"function": {"name": "noargs", "arguments": {}}}]
    body = _lines(_say(thinking="Hmm. "), _say(thinking="Yes."), _say("Looking."),
                  _say(tool_calls=calls), DONE)
    chunks, _ = await _stream(replay_server, body)
    assert "".join(c.reasoning for c in chunks) == "Hmm. Yes."
    assert "".join(c.content for c in chunks) == "Looking."
    got = [call for c in chunks for call in c.tool_calls]
    assert [(c.name, json.loads(c.arguments)) for c in got] == [("look", {"x": 1}),
                                                                ("noargs", {})]
    assert len({c.id for c in got}) == 2
    last = chunks[-1]
    assert (last.raw_stop_reason, last.stop_reason) == ("stop", StopReason.END)
    assert last.usage is not None
    assert dict(last.usage.raw) == {"total_duration": 900, "prompt_eval_count": 4,
                                    "eval_count": 6, "eval_duration": 500}
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.total_tokens) == (
        4, 6, 10)
    assert last.model == "qwen3"


@pytest.mark.anyio
async def test_an_error_line_raises(replay_server: ReplayServer) -> None:
    with pytest.raises(ProviderStreamError, match="model runner crashed"):
        await _stream(replay_server, _lines(_say("Once"), {"error": "model runner crashed"}))


@pytest.mark.anyio
async def test_a_stream_without_the_done_line_is_truncated(replay_server: ReplayServer) -> None:
    with pytest.raises(StreamProtocolError, match="truncated"):
        await _stream(replay_server, _lines(_say("Once"), _say(" upon")))


def test_the_host_comes_from_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")
    assert OllamaProvider().base_url == "http://10.0.0.5:11434"
    monkeypatch.delenv("OLLAMA_HOST")
    assert OllamaProvider().base_url == "http://localhost:11434"
    assert OllamaProvider(base_url="https://ollama.com").base_url == "https://ollama.com"

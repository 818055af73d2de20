"""What the Gemini provider sends, both response framings, and where the key goes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos.errors import AuthenticationError, ProviderStreamError, StreamProtocolError
from chronos.model import (
    ChatRequest,
    ChatResponse,
    GeminiProvider,
    ImagePart,
    Message,
    RetryPolicy,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
    accumulate,
)
from tests.model.recordings import DEFAULT_FOLDER, PROVIDERS, Recording
from tests.model.replay import ReplayServer, Reply

KEY = "AIzaSyTEST-0123456789abcdefghijklmnop"
REQ = ChatRequest(messages=[Message(role="user", content="Hi")])


def _response(parts: list[dict[str, Any]], finish: str | int | None = None,
              **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-x", "responseId": "r1", **extra}


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events).encode()


def _array(*elements: dict[str, Any]) -> bytes:
    return ("[" + "\n,\r\n".join(json.dumps(e, indent=2) for e in elements) + "]").encode()


SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json; charset=UTF-8"}


async def _stream(server: ReplayServer, reply: Reply, req: ChatRequest = REQ,
                  **options: Any) -> tuple[list[ChatResponse], Any]:
    script = server.script(reply)
    chunks: list[ChatResponse] = []
    provider = GeminiProvider("gemini-x", base_url=script.base_url + "/v1beta", api_key=KEY,
                              retry=RetryPolicy(max_retries=0), **options)
    async with provider:
        async for chunk in provider.stream_chat(req):
            chunks.append(chunk)
    return chunks, script.exchanges[0]


@pytest.mark.anyio
async def test_request_body_url_and_key_header(replay_server: ReplayServer) -> None:
    req = ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=[TextPart("What is this?"),
                                          ImagePart(data="AAAA", media_type="image/jpeg")]),
            Message(role="assistant", tool_calls=[ToolCall("c1", "look", '{"x": 1}')]),
            Message(role="tool", tool_call_id="c1", content="a robot"),
        ],
        model="models/gemini-other", max_tokens=50, temperature=0.0, top_p=0.5, seed=3,
        stop=["END"], tools=[ToolDefinition("look", "Look at something")],
        response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    )
    body = _sse(_response([{"text": "ok"}], "STOP"))
    _, exchange = await _stream(replay_server, Reply(body=body, headers=SSE), req,
                                include_thoughts=True, thinking_budget=0)
    assert exchange.path.endswith("/v1beta/models/gemini-other:streamGenerateContent?alt=sse")
    assert KEY not in exchange.path
    assert exchange.headers["x-goog-api-key"] == KEY
    sent = json.loads(exchange.body)
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "What is this?"},
                                   {"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"x": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {
            "name": "look", "response": {"content": "a robot"}}}]},
    ]
    assert sent["generationConfig"] == {
        "maxOutputTokens": 50, "temperature": 0.0, "topP": 0.5, "seed": 3,
        "stopSequences": ["END"], "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 0}}
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "look"


@pytest.mark.anyio
async def test_sse_thoughts_calls_and_usage(replay_server: ReplayServer) -> None:
    usage_1 = {"promptTokenCount": 5, "totalTokenCount": 5}
    usage_2 = {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4,
               "totalTokenCount": 12}
    body = _sse(
        _response([{"text": "Let me think.", "thought": True}], usageMetadata=usage_1),
        _response([{"text": "Calling.", "thoughtSignature": "c2ln"},
                   {"functionCall": {"name": "look", "args": {"x": 1}}},
                   {"functionCall": {"name": "look", "args": {"x": 2}}, "thoughtSignature": "x"},
                   {"functionCall": {"name": "noargs"}}], "STOP", usageMetadata=usage_2),
    )
    chunks, _ = await _stream(replay_server, Reply(body=body, headers=SSE))
    assert "".join(c.reasoning for c in chunks) == "Let me think."
    assert "".join(c.content for c in chunks) == "Calling."
    calls = [call for c in chunks for call in c.tool_calls]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("look", {"x": 1}), ("look", {"x": 2}), ("noargs", {})]
    assert len({c.id for c in calls}) == 3
    assert all(calls)
    last = chunks[-1]
    assert (last.raw_stop_reason, last.stop_reason) == ("STOP", StopReason.END)
    assert last.usage is not None
    assert dict(last.usage.raw) == usage_2
    assert (last.usage.input_tokens, last.usage.output_tokens) == (5, 7)
    assert (last.id, last.model) == ("r1", "gemini-x")


@pytest.mark.anyio
async def test_json_array_stream_with_integer_enums(replay_server: ReplayServer) -> None:
    body = _array(_response([{"text": "Once"}]),
                  _response([{"text": " upon"}], 2, usageMetadata={"totalTokenCount": 9}))
    chunks, exchange = await _stream(
        replay_server, Reply(body=body, headers=JSON, max_piece=7),
        query="$alt=json;enum-encoding=int")
    assert exchange.path.endswith(":streamGenerateContent?$alt=json;enum-encoding=int")
    assert "".join(c.content for c in chunks) == "Once upon"
    assert (chunks[-1].raw_stop_reason, chunks[-1].stop_reason) == ("2", StopReason.MAX_TOKENS)


@pytest.mark.anyio
async def test_generate_content_answers_in_one_chunk(replay_server: ReplayServer) -> None:
    body = json.dumps(_response([{"text": "Whole answer"}], "SAFETY")).encode()
    chunks, exchange = await _stream(replay_server, Reply(body=body, headers=JSON),
                                     streaming=False)
    assert exchange.path.endswith("/models/gemini-x:generateContent")
    assert "".join(c.content for c in chunks) == "Whole answer"
    assert chunks[-1].stop_reason is StopReason.CONTENT_FILTER


@pytest.mark.anyio
async def test_a_blocked_prompt_is_a_content_filter_stop(replay_server: ReplayServer) -> None:
    body = _sse({"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-x"})
    chunks, _ = await _stream(replay_server, Reply(body=body, headers=SSE))
    assert (chunks[-1].raw_stop_reason, chunks[-1].stop_reason) == (
        "SAFETY", StopReason.CONTENT_FILTER)


@pytest.mark.anyio
async def test_an_error_element_inside_the_array_raises(replay_server: ReplayServer) -> None:
    body = _array(_response([{"text": "Once"}]),
                  {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}})
    with pytest.raises(ProviderStreamError, match="Internal error") as info:
        await _stream(replay_server, Reply(body=body, headers=JSON))
    assert info.value.code == "INTERNAL"


@pytest.mark.parametrize(
    ("body", "headers"),
    [(_sse(_response([{"text": "Once"}])), SSE),  # no finishReason, no terminal event
     (_array(_response([{"text": "Once"}]))[:-1], JSON)],  # the array never closed
)
@pytest.mark.anyio
async def test_truncated_streams_are_detected(
    replay_server: ReplayServer, body: bytes, headers: dict[str, str]
) -> None:
    with pytest.raises(StreamProtocolError, match="truncated"):
        await _stream(replay_server, Reply(body=body, headers=headers))


@pytest.mark.anyio
async def test_the_key_never_reaches_an_http_error(replay_server: ReplayServer) -> None:
    error = {"error": {"code": 400, "message": f"API key not valid: {KEY}",
                       "status": "INVALID_ARGUMENT"}}
    script = replay_server.script(Reply(status=403, body=json.dumps(error).encode(),
                                        headers=JSON))
    async with GeminiProvider("gemini-x", base_url=script.base_url, api_key=KEY) as provider:
        with pytest.raises(AuthenticationError) as info:
            await accumulate(provider.stream_chat(REQ))
    assert KEY not in repr(info.value) + str(info.value) + str(info.value.__dict__)
    assert "API key not valid" in str(info.value)


@pytest.mark.parametrize("body", [_sse(_response([{"text": "Hi"}], "STOP")),
                                  _array(_response([{"text": "Hi"}], "STOP"))])
@pytest.mark.anyio
async def test_without_a_useful_content_type_the_framing_is_sniffed(
    replay_server: ReplayServer, body: bytes
) -> None:
    reply = Reply(body=b"\r\n" + body, headers={"content-type": "text/plain"}, max_piece=1)
    chunks, _ = await _stream(replay_server, reply)
    assert "".join(c.content for c in chunks) == "Hi"


# Real recordings whose function calls carry a `thoughtSignature` (both framings); the
# second turn of the first one was recorded too, with the signature sent back.
SIGNED = DEFAULT_FOLDER / "gemini"
SIGNED_RECORDINGS = [
    "llm-gemini__test_gemini__test_tools_with_nested_pydantic_models__0.json",
    "llm-gemini__test_gemini__test_tools__0.json",
    "pydantic-ai__models__test_google__test_google_streaming_tool_call_thought_signature__0.json",
    "pydantic-ai__models__google__test_structured_output__test_native_output_with_function_"
    "tools_stream__0.json",
]


def _load(name: str) -> Recording:
    path = SIGNED / name
    if not path.is_file():
        pytest.skip(f"recording {name} not in {SIGNED}")
    return Recording(path, json.loads(path.read_text(encoding="utf-8")))


def _recorded_call_signatures(recording: Recording) -> list[str]:
    body = recording.body.decode()
    if recording.data["response"]["body_format"] == "json_array":
        events = json.loads(body)
    else:
        events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    return [part["thoughtSignature"] for event in events
            for candidate in event.get("candidates") or ()
            for part in (candidate.get("content") or {}).get("parts") or ()
            if "functionCall" in part and "thoughtSignature" in part]


@pytest.mark.anyio
@pytest.mark.parametrize("name", SIGNED_RECORDINGS)
async def test_a_recorded_thought_signature_is_kept_and_sent_back(
    replay_server: ReplayServer, name: str
) -> None:
    recording = _load(name)
    signatures = _recorded_call_signatures(recording)
    assert signatures, "the recording has a signed function call"
    first = Reply(status=recording.status, body=recording.body,
                  headers={"content-type": recording.content_type}, seed=len(name))
    script = replay_server.script(first, Reply(body=_sse(_response([{"text": "ok"}], "STOP")),
                                               headers=SSE))
    provider = PROVIDERS[recording.api](recording, script.base_url)
    async with provider:
        response = await accumulate(provider.stream_chat(REQ))
        assert [call.signature for call in response.tool_calls] == signatures
        follow_up = ChatRequest(messages=[
            *REQ.messages,
            Message(role="assistant", tool_calls=response.tool_calls),
            *(Message(role="tool", tool_call_id=call.id, content="done")
              for call in response.tool_calls),
        ])
        await accumulate(provider.stream_chat(follow_up))
    sent = json.loads(script.exchanges[1].body)["contents"][1]
    assert sent["role"] == "model"
    assert [part["thoughtSignature"] for part in sent["parts"]] == signatures
    assert [part["functionCall"]["name"] for part in sent["parts"]] == [
        call.name for call in response.tool_calls]


@pytest.mark.anyio
async def test_the_follow_up_turn_matches_the_recorded_one(replay_server: ReplayServer) -> None:
    # What Google's own SDK sent back in the recorded second turn (its snake_case spelling).
    first = _load(SIGNED_RECORDINGS[0])
    second = _load(SIGNED_RECORDINGS[0].replace("__0.json", "__1.json"))
    recorded = second.data["request"]["json"]["contents"][1]["parts"][0]
    script = replay_server.script(
        Reply(body=first.body, headers={"content-type": first.content_type}),
        Reply(body=_sse(_response([{"text": "ok"}], "STOP")), headers=SSE))
    provider = PROVIDERS[first.api](first, script.base_url)
    async with provider:
        [call] = (await accumulate(provider.stream_chat(REQ))).tool_calls
        await provider.chat(ChatRequest(messages=[
            *REQ.messages, Message(role="assistant", tool_calls=[call]),
            Message(role="tool", tool_call_id=call.id, content="Added")]))
    [sent] = json.loads(script.exchanges[1].body)["contents"][1]["parts"]
    assert sent == {
        "functionCall": {"name": recorded["function_call"]["name"],
                         "args": recorded["function_call"]["args"]},
        "thoughtSignature": recorded["thoughtSignature"],
    }

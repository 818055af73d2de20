"""`POST /ai-sdk/{graph_id}` and its reconnect route on `chronos serve`: the UI message
stream's framing and chunks, errors in the stream once it has begun, bad input refused
before it (the npm reader's own checks are in test_js_clients.py)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.model.replay import ReplayServer
from tests.server.api_server import Served
from tests.server.dialects.graphs import SLOW_WORDS, WORDS
from tests.server.dialects.test_openai import REASONING, TOOL_CALL, recording, scripted


def chat_request(text: str, chat_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": chat_id or f"c-{uuid.uuid4().hex}", "trigger": "submit-message",
            "messages": [{"id": uuid.uuid4().hex, "role": "user",
                          "parts": [{"type": "text", "text": text}]}], **extra}


def stream(served: Served, body: dict[str, Any], graph_id: str = "chat"
           ) -> tuple[httpx.Headers, list[Any]]:
    with httpx.stream("POST", f"{served.url}/ai-sdk/{graph_id}", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return r.headers, [orjson.loads(line[6:]) for line in lines[:-1]]


def test_the_ui_message_stream_is_framed_as_the_ai_sdk_expects(served: Served) -> None:
    headers, chunks = stream(served, chat_request("hello"))
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert headers["content-type"].startswith("text/event-stream")
    kinds = [c["type"] for c in chunks]
    assert kinds[:3] == ["start", "start-step", "data-progress"]
    assert kinds[-2:] == ["finish-step", "finish"]
    assert chunks[-1]["finishReason"] == "stop"
    assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == WORDS
    text_ids = {c["id"] for c in chunks if c["type"].startswith("text-")}
    assert len(text_ids) == 1
    assert kinds.index("reasoning-end") < kinds.index("text-start") < kinds.index("text-end")


def test_an_interrupt_is_a_data_part_with_its_question(served: Served) -> None:
    _, chunks = stream(served, chat_request("approve it"))
    [pause] = [c for c in chunks if c["type"] == "data-interrupt"]
    [asked] = pause["data"]["interrupts"]
    assert asked["value"] == {"question": "approve?"}
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}


def test_a_failing_run_sends_an_error_chunk_then_finish(served: Served) -> None:
    _, chunks = stream(served, chat_request("fail now"))
    error = next(c for c in chunks if c["type"] == "error")
    assert "the model broke down" in error["errorText"]
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    # The text the model had begun is closed before the error.
    [start] = [c for c in chunks if c["type"] == "text-start"]
    assert chunks.index({"type": "text-end", "id": start["id"]}) < chunks.index(error)


def test_a_second_turn_adds_only_the_new_user_message(served: Served) -> None:
    body = chat_request("hello")
    _, chunks = stream(served, body)
    assistant = {"id": chunks[0]["messageId"], "role": "assistant",
                 "parts": [{"type": "text", "text": "".join(WORDS)}]}
    second = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "again"}]}
    stream(served, {**body, "messages": [*body["messages"], assistant, second]})
    state = httpx.get(f"{served.url}/threads/{body['id']}/state").json()["values"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant", "user", "assistant"]
    assert state["messages"][2]["id"] == "u2"


def test_reconnecting_when_no_run_is_going_gets_204(served: Served) -> None:
    body = chat_request("hello")
    stream(served, body)
    r = httpx.get(f"{served.url}/ai-sdk/chat/{body['id']}/stream")
    assert r.status_code == 204
    assert httpx.get(f"{served.url}/ai-sdk/chat/unknown-chat/stream").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": []}, "id"),
    ({"id": "c", "messages": "hi"}, "messages"),
    ({"id": "c", "messages": [{"id": "m", "role": "user"}]}, "messages[0].parts"),
    ({"id": "c", "messages": [{"id": "m", "role": "robot", "parts": []}]}, "messages[0].role"),
    ({"id": "c", "messages": [], "trigger": "poke"}, "trigger"),
    ({"id": "c-unknown", "messages": [], "trigger": "regenerate-message",
      "messageId": 7}, "messageId"),
])
def test_bad_input_is_refused_naming_the_field(served: Served, body: dict[str, Any],
                                               field: str) -> None:
    r = httpx.post(f"{served.url}/ai-sdk/chat", json=body)
    assert r.status_code == 422
    assert f"'{field}'" in r.json()["detail"]


def test_an_unknown_graph_is_404(served: Served) -> None:
    assert httpx.post(f"{served.url}/ai-sdk/nope", json=chat_request("hi")).status_code == 404
    assert httpx.get(f"{served.url}/ai-sdk/nope/c-1/stream").status_code == 404


def test_a_command_beside_the_message_answers_an_interrupt(served: Served) -> None:
    body = chat_request("approve it")
    stream(served, body)
    answer = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "yes, go"}]}
    _, chunks = stream(served, {**body, "messages": [*body["messages"], answer],
                                "command": {"resume": "yes"}})
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}
    state = httpx.get(f"{served.url}/threads/{body['id']}/state").json()["values"]
    assert state["approved"] == "yes"
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == \
        ["approve it", "yes, go", "review: yes"]
    r = httpx.post(f"{served.url}/ai-sdk/chat", json={**body, "command": "yes"})
    assert r.status_code == 422
    assert "'command'" in r.json()["detail"]


def test_a_recorded_vendor_stream_arrives_whole(served: Served,
                                                replay_server: ReplayServer) -> None:
    """DeepSeek's reasoning and text, and OpenAI's tool call, as recorded, over real HTTP."""
    expected = recording(REASONING)["expected"]
    _, chunks = stream(served, chat_request(scripted(replay_server, REASONING)), "replay")
    assert "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta") == \
        expected["reasoning"]
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == expected["text"]

    [call] = recording(TOOL_CALL)["expected"]["tool_calls"]
    _, chunks = stream(served, chat_request(scripted(replay_server, TOOL_CALL)), "replay")
    [available] = [c for c in chunks if c["type"] == "tool-input-available"]
    assert available == {"type": "tool-input-available", "toolCallId": call["id"],
                         "toolName": call["name"], "input": {"a": 1231, "b": 2331}}
    assert "".join(c["inputTextDelta"] for c in chunks if c["type"] == "tool-input-delta") == \
        call["arguments"]


def test_one_run_is_watched_in_the_ai_sdk_and_the_native_stream_at_once(served: Served) -> None:
    body = chat_request("slow, please")
    with httpx.stream("POST", f"{served.url}/ai-sdk/chat", json=body, timeout=30) as r:
        lines = r.iter_lines()  # the run goes on while this stream is not read
        start = orjson.loads(next(lines)[6:])
        run_id = start["messageId"]  # the run's id
        native = httpx.get(f"{served.url}/threads/{body['id']}/runs/{run_id}/stream",
                           params={"stream_mode": "messages-tuple"}, timeout=30,
                           headers={"Last-Event-ID": "-1"})
        chunks = [orjson.loads(line[6:]) for line in lines
                  if line.startswith("data: ") and line != "data: [DONE]"]
    tokens = [orjson.loads(line[6:])[0]["content"] for line in native.text.splitlines()
              if line.startswith("data: [")]
    tokens = [t for t in tokens if t]  # the reasoning's chunks have no content
    deltas = [c["delta"] for c in chunks if c["type"] == "text-delta"]
    # The same run's tokens, each once, in both (the native join replayed it from its start).
    assert tokens == deltas == SLOW_WORDS


def test_regenerating_an_answer_the_chat_does_not_have_is_refused(served: Served) -> None:
    body = chat_request("hello")
    stream(served, body)
    r = httpx.post(f"{served.url}/ai-sdk/chat", json={
        **body, "trigger": "regenerate-message", "messageId": "not-an-answer"})
    assert r.status_code == 422
    assert "'messageId'" in r.json()["detail"]
    r = httpx.post(f"{served.url}/ai-sdk/chat", json={
        **body, "id": "c-never-seen", "trigger": "regenerate-message"})
    assert r.status_code == 404

"""The dialects across two `chronos serve` processes sharing Redis (broker, records) and
PostgreSQL (checkpoints): a run started through one process's dialect route is rejoined,
resumed or regenerated through the other's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.server.api_server import Served, serving
from tests.server.dialects.graphs import SLOW_WORDS, WORDS
from tests.server.dialects.test_agui import run_input
from tests.server.dialects.test_aisdk import chat_request
from tests.server.dialects.test_aisdk import stream as aisdk_stream
from tests.store.backends import POSTGRES_URL

_SHARED = ("--broker", "redis://127.0.0.1:6379/0")
_GRAPHS = ("tests.server.dialects.graphs:chat", "tests.server.dialects.openai_graphs:asking")


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Served, Served]]:
    with serving(*_GRAPHS, store=POSTGRES_URL, options=_SHARED) as first, \
            serving(*_GRAPHS, store=POSTGRES_URL, options=_SHARED) as second:
        yield first, second


def data_lines(lines: Iterator[str]) -> list[Any]:
    """The JSON of each `data:` line but `[DONE]`."""
    return [orjson.loads(line[6:]) for line in lines
            if line.startswith("data: ") and line != "data: [DONE]"]


def leave_after(url: str, body: dict[str, Any], marker: str, count: int) -> None:
    """POST `body`, read until `marker` was seen `count` times, and leave (the run goes on)."""
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            seen += marker in line
            if seen == count:
                return
    raise AssertionError("the stream ended first")


def test_an_ai_sdk_chat_started_on_one_process_is_resumed_through_the_other(
        two: tuple[Served, Served]) -> None:
    a, b = two
    body = chat_request("slow, please")
    leave_after(f"{a.url}/ai-sdk/chat", body, '"text-delta"', 3)
    with httpx.stream("GET", f"{b.url}/ai-sdk/chat/{body['id']}/stream", timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
        chunks = data_lines(r.iter_lines())
    assert chunks[0]["type"] == "start"
    assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == SLOW_WORDS
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}
    assert httpx.get(f"{b.url}/ai-sdk/chat/{body['id']}/stream").status_code == 204


def test_an_ai_sdk_answer_from_one_process_is_regenerated_through_the_other(
        two: tuple[Served, Served]) -> None:
    a, b = two
    body = chat_request("hello")
    _, first = aisdk_stream(a, body)
    _, again = aisdk_stream(b, {**body, "trigger": "regenerate-message",
                                "messageId": first[0]["messageId"]})
    assert again[0]["messageId"] != first[0]["messageId"]
    assert [c["delta"] for c in again if c["type"] == "text-delta"] == WORDS
    state = httpx.get(f"{a.url}/threads/{body['id']}/state").json()["values"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"]


def test_an_ag_ui_run_started_on_one_process_is_connected_to_through_the_other(
        two: tuple[Served, Served]) -> None:
    a, b = two
    body = run_input("slow, please", forwardedProps={"on_disconnect": "continue"})
    leave_after(f"{a.url}/ag-ui/chat", body, "TEXT_MESSAGE_CONTENT", 3)
    r = httpx.post(f"{b.url}/ag-ui/chat/connect", json=body, timeout=30)
    events = data_lines(iter(r.text.splitlines()))
    assert events[0]["type"] == "RUN_STARTED"
    assert [e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"] == SLOW_WORDS
    assert events[-1]["type"] == "RUN_FINISHED"


def test_an_openai_pause_on_one_process_is_answered_through_the_other(
        two: tuple[Served, Served]) -> None:
    a, b = (openai.OpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)
            for s in two)
    question = [{"role": "user", "content": f"write it {uuid.uuid4().hex}"}]
    paused = a.chat.completions.create(model="asking", messages=question)
    [call] = paused.choices[0].message.tool_calls or []
    done = b.chat.completions.create(model="asking", messages=[
        *question, paused.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "yes"}])
    assert done.choices[0].message.content == "published: yes"
    with pytest.raises(openai.NotFoundError):  # answered: the thread went, for both
        a.chat.completions.create(model="asking", messages=[
            *question, paused.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "again"}])

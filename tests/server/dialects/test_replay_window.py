"""Reconnecting once the broker's replay window no longer holds all of a run (a server whose
broker keeps 20 events per topic, and a run of about 50 tokens): the AI SDK's resume route
and AG-UI's connect wait for the run's end and send its final answer whole, never a message
with holes; after the run, the AI SDK route answers 204 and connect an empty stream. When
even the run's start has gone (a broker keeping events 0.5 s, joined 0.8 s into a 2 s run), the
pause it ends in is shown too."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.server.api_server import Served, serving
from tests.server.dialects.graphs import SLOW_WORDS
from tests.server.dialects.test_agui import _EVENT, run_input, types
from tests.server.dialects.test_aisdk import chat_request
from tests.server.dialects.test_processes import data_lines, leave_after


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.dialects.graphs:chat",
                 options=("--broker", "memory://?replay_events=20")) as server:
        yield server


def test_the_ai_sdk_reconnect_sends_the_final_answer_whole(served: Served) -> None:
    body = chat_request("slow, please")
    leave_after(f"{served.url}/ai-sdk/chat", body, '"text-delta"', 25)
    r = httpx.get(f"{served.url}/ai-sdk/chat/{body['id']}/stream", timeout=30)
    assert r.status_code == 200
    chunks = data_lines(iter(r.text.splitlines()))
    assert [c["type"] for c in chunks] == ["start", "text-start", "text-delta", "text-end",
                                           "finish"]
    assert chunks[2]["delta"] == "".join(SLOW_WORDS)
    assert chunks[-1]["finishReason"] == "stop"
    assert httpx.get(f"{served.url}/ai-sdk/chat/{body['id']}/stream").status_code == 204


def test_ag_ui_connect_sends_the_final_state_and_answer_whole(served: Served) -> None:
    body = run_input("slow, please", forwardedProps={"on_disconnect": "continue"})
    leave_after(f"{served.url}/ag-ui/chat", body, "TEXT_MESSAGE_CONTENT", 25)
    r = httpx.post(f"{served.url}/ag-ui/chat/connect", json=body, timeout=30)
    events = [_EVENT.validate_python(e) for e in data_lines(iter(r.text.splitlines()))]
    # The state it started from, then (the run's events gone) its final state and answer.
    assert types(events) == ["RUN_STARTED", "STATE_SNAPSHOT", "STATE_SNAPSHOT",
                             "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
                             "RUN_FINISHED"]
    assert [m["role"] for m in events[1].snapshot["messages"]] == ["user"]
    messages = events[2].snapshot["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert events[4].delta == messages[1]["content"] == "".join(SLOW_WORDS)
    after = httpx.post(f"{served.url}/ag-ui/chat/connect", json=body, timeout=30)
    assert (after.status_code, after.text) == (200, "")


@pytest.fixture(scope="module")
def forgetful() -> Iterator[Served]:
    with serving("tests.server.dialects.graphs:chat",
                 options=("--broker", "memory://?replay_seconds=0.5")) as server:
        yield server


def test_a_reconnect_that_missed_the_runs_start_gets_its_answer_and_pause(
        forgetful: Served) -> None:
    body = chat_request("slow, then approve")
    leave_after(f"{forgetful.url}/ai-sdk/chat", body, '"text-delta"', 3)
    time.sleep(0.7)  # the run's start leaves the window; the run goes on (2 s of words)
    r = httpx.get(f"{forgetful.url}/ai-sdk/chat/{body['id']}/stream", timeout=30)
    chunks = data_lines(iter(r.text.splitlines()))
    assert [c["type"] for c in chunks] == ["start", "text-start", "text-delta", "text-end",
                                           "data-interrupt", "finish"]
    assert chunks[2]["delta"] == "".join(SLOW_WORDS)
    [asked] = chunks[4]["data"]["interrupts"]
    assert asked["value"] == {"question": "approve?"}

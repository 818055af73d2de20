"""The npm clients of each ecosystem read `chronos serve`'s dialects (js/clients.mjs):
`@ag-ui/client`'s `HttpAgent` rebuilds messages and state over four runs (text, a tool call,
an interrupt, its resume); the `ai` package's `DefaultChatTransport` and `readUIMessageStream`
(what `useChat` runs) rebuild the assistant message with its parts, and a reconnect mid-stream
resumes it without duplicates; `@ai-sdk/react`'s `Chat` (the state behind `useChat`) regenerates
answers; `HttpAgent.connectAgent()` reconnects to a run in progress once given the `connect()`
that @ag-ui/client 1.0.0 lacks. `scripts/setup` installs the packages (`npm ci` in
tests/server/dialects/js, from package-lock.json).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.server.api_server import Served
from tests.server.dialects.graphs import REASONING, SLOW_WORDS, WORDS

JS = Path(__file__).resolve().parent / "js"


def run_client(mode: str, served: Served) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js 20+ is needed for the npm client tests"
    assert (JS / "node_modules" / "@ag-ui" / "client").is_dir(), (
        "npm packages missing: run scripts/setup (npm ci in tests/server/dialects/js)")
    done = subprocess.run([node, "clients.mjs", mode, served.url], cwd=JS, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def aisdk(served: Served) -> dict[str, Any]:
    return run_client("aisdk", served)


def test_ag_ui_http_agent_rebuilds_messages_and_state(served: Served) -> None:
    result = run_client("agui", served)
    messages = result["messages"]
    by_role = [(m["role"], m.get("content")) for m in messages]
    answer = "".join(WORDS)
    assert by_role[:3] == [("user", "hello"), ("reasoning", "".join(REASONING)),
                           ("assistant", answer)]
    [call_message] = [m for m in messages if m.get("toolCalls")]
    [call] = call_message["toolCalls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    [result_message] = [m for m in messages if m["role"] == "tool"]
    assert (result_message["toolCallId"], result_message["content"]) == (call["id"], "sunny, 21 C")
    assert ("assistant", "It is sunny.") in by_role
    # The third run paused: the client kept its interrupt until the resume answered it.
    assert [t["pending"] for t in result["turns"][:2]] == [[], []]
    [asked] = result["turns"][2]["pending"]
    assert asked["metadata"] == {"value": {"question": "approve?"}}
    assert result["pending"] == []
    # State rebuilt from STATE_SNAPSHOT + STATE_DELTA patches: the thread's own values.
    state = result["state"]
    assert state["approved"] == "yes"
    assert [m["id"] for m in state["messages"] if m["role"] != "tool"][:2] == \
        [messages[0]["id"], messages[2]["id"]]
    assert state["messages"][-1]["content"] == "review: yes"
    # The history resent with each run was not added to the thread twice.
    users = [m["content"] for m in state["messages"] if m["role"] == "user"]
    assert users == ["hello", "what is the weather?", "approve this", "review: yes"]


def test_ai_sdk_reader_rebuilds_the_assistant_message_with_its_parts(
        aisdk: dict[str, Any]) -> None:
    result = aisdk
    parts = result["text"]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "data-progress", "reasoning", "text"]
    assert parts[2]["text"] == "".join(REASONING)
    assert parts[3] == {"type": "text", "text": "".join(WORDS), "state": "done"}

    tool_parts = result["tools"]["parts"]
    [tool] = [p for p in tool_parts if p["type"] == "tool-get_weather"]
    assert tool["state"] == "output-available"
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, "sunny, 21 C")
    assert [p["data"]["node"] for p in tool_parts if p["type"] == "data-progress"] == \
        ["respond", "tool", "respond"]
    assert tool_parts[-1]["text"] == "It is sunny."


def test_ai_sdk_reconnect_mid_stream_resumes_without_duplicates(aisdk: dict[str, Any]) -> None:
    result = aisdk
    before = [c["delta"] for c in result["before"] if c["type"] == "text-delta"]
    assert before == SLOW_WORDS[:3]  # the client left after three words
    message = result["resumed"]["message"]
    assert message["id"] == result["before"][0]["messageId"]  # the same run's message
    [text] = [p["text"] for p in message["parts"] if p["type"] == "text"]
    assert text == "".join(SLOW_WORDS)  # every word once, though the first three came twice
    chunks = result["resumed"]["chunks"]
    assert [c["type"] for c in chunks].count("start") == 1
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}
    assert result["afterEnd"]  # the run over, a reconnect gets 204: nothing to resume


def test_ai_sdk_chat_regenerates_the_last_answer_and_an_earlier_one(served: Served) -> None:
    result = run_client("regenerate", served)
    user1, answer1, user2, answer2 = result["asked"]
    regenerated = result["regenerated"]
    assert regenerated["error"] is None
    assert regenerated["ids"][:3] == [user1, answer1, user2]
    assert regenerated["ids"][3] != answer2  # a new answer: a new run
    [text] = [p["text"] for p in regenerated["messages"][3]["parts"] if p["type"] == "text"]
    assert text == "".join(WORDS)
    # The thread holds the conversation once, with the new answer in place of the old one.
    state = regenerated["state"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * 2
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == \
        ["hello", "and again"]
    # Regenerating the first answer goes back to before it: the second turn is gone.
    first = result["first"]
    assert first["error"] is None
    assert first["ids"][0] == user1
    assert first["ids"][1] not in (answer1, answer2)
    assert len(first["ids"]) == 2
    state = first["state"]
    assert [(m["role"], m["content"]) for m in state["messages"]] == \
        [("user", "hello"), ("assistant", "".join(WORDS))]


def test_ag_ui_connect_agent_rejoins_a_run_in_progress(served: Served) -> None:
    result = run_client("aguiConnect", served)
    assert result["before"] == SLOW_WORDS[:3]  # the first client left after three words
    assert result["asIs"] == []  # HttpAgent as shipped: connect() is not implemented
    # With connect() posting to /connect: the run, which went on, from its start, once.
    assert result["events"][0] == "RUN_STARTED"
    assert result["events"][-1] == "RUN_FINISHED"
    assert [(m["role"], m["content"]) for m in result["messages"]] == \
        [("reasoning", "".join(REASONING)), ("assistant", "".join(SLOW_WORDS))]
    assert result["afterEnd"] == []  # nothing in progress: an empty stream

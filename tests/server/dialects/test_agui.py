"""`POST /ag-ui/{graph_id}` on `chronos serve`: every event checked by the `ag-ui-protocol`
package's own models (pydantic), the stream's shape for text, reasoning, tool calls, custom
events, interrupts and errors, and bad input refused before streaming."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from ag_ui.core import Event, EventType, RunFinishedEvent
from pydantic import TypeAdapter

from tests.model.replay import ReplayServer
from tests.server.api_server import Served
from tests.server.dialects.graphs import REASONING, TOOL_ARGUMENTS, WORDS
from tests.server.dialects.test_openai import REASONING as RECORDED_REASONING
from tests.server.dialects.test_openai import TOOL_CALL as RECORDED_TOOL_CALL
from tests.server.dialects.test_openai import recording, scripted

_EVENT: TypeAdapter[Any] = TypeAdapter(Event)


def run_input(content: str, thread_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"threadId": thread_id or f"t-{uuid.uuid4().hex}", "runId": uuid.uuid4().hex,
            "messages": [{"id": uuid.uuid4().hex, "role": "user", "content": content}],
            "state": {}, "tools": [], "context": [], "forwardedProps": {}, **extra}


def stream(served: Served, body: dict[str, Any], graph_id: str = "chat") -> list[Any]:
    """The run's events, each validated by ag-ui-protocol's models."""
    with httpx.stream("POST", f"{served.url}/ag-ui/{graph_id}", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    return [_EVENT.validate_python(orjson.loads(line[6:])) for line in lines]


def types(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


def test_a_text_run_streams_steps_reasoning_text_state_and_custom_events(served: Served) -> None:
    body = run_input("hello")
    events = stream(served, body)
    names = types(events)
    assert names[0] == "RUN_STARTED"
    assert names[1] == "STATE_SNAPSHOT"
    assert names[-1] == "RUN_FINISHED"
    assert (events[0].thread_id, events[0].run_id) == (body["threadId"], body["runId"])
    assert events[1].snapshot == {"messages": [{**body["messages"][0]}]}
    assert names[2:5] == ["STEP_STARTED", "CUSTOM", "REASONING_START"]
    assert events[2].step_name == "respond"
    assert (events[3].name, events[3].value) == ("progress", {"node": "respond"})
    reasoning = [e.delta for e in events if e.type == EventType.REASONING_MESSAGE_CONTENT]
    assert reasoning == REASONING
    text = [e for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT]
    assert [e.delta for e in text] == WORDS
    start = names.index("TEXT_MESSAGE_START")
    assert names.index("REASONING_END") < start < names.index("TEXT_MESSAGE_END")
    assert names[-3:] == ["STATE_DELTA", "STEP_FINISHED", "RUN_FINISHED"]
    [delta] = [e for e in events if e.type == EventType.STATE_DELTA]
    [op] = [o.model_dump(by_alias=True) for o in delta.delta]
    assert op["op"] == "add"
    assert op["path"] == "/messages/-"
    assert op["value"] == {"id": text[0].message_id, "role": "assistant",
                           "content": "".join(WORDS)}
    finished = events[-1]
    assert isinstance(finished, RunFinishedEvent)
    assert finished.outcome is None


def test_tool_calls_stream_as_tool_call_events_with_their_result(served: Served) -> None:
    events = stream(served, run_input("what is the weather?"))
    names = types(events)
    [start] = [e for e in events if e.type == EventType.TOOL_CALL_START]
    assert start.tool_call_name == "get_weather"
    args = [e.delta for e in events if e.type == EventType.TOOL_CALL_ARGS]
    assert "".join(args) == "".join(TOOL_ARGUMENTS)
    assert names.index("TOOL_CALL_START") < names.index("TOOL_CALL_END") \
        < names.index("TOOL_CALL_RESULT")
    [result] = [e for e in events if e.type == EventType.TOOL_CALL_RESULT]
    assert (result.tool_call_id, result.content) == (start.tool_call_id, "sunny, 21 C")
    assert [e.step_name for e in events if e.type == EventType.STEP_STARTED] == \
        ["respond", "tool", "respond"]
    assert "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT) == \
        "It is sunny."


def test_an_interrupt_ends_the_run_with_an_interrupt_outcome_and_resume_answers_it(
        served: Served) -> None:
    body = run_input("please approve this")
    first = stream(served, body)
    outcome = first[-1].outcome
    assert outcome is not None
    assert outcome.type == "interrupt"
    [asked] = outcome.interrupts
    assert asked.reason == "input_required"
    assert asked.metadata == {"value": {"question": "approve?"}}
    assert types(first)[-2] == "STEP_FINISHED"  # every step closed before the run's end

    resume = [{"interruptId": asked.id, "status": "resolved", "payload": "yes"}]
    said = {"id": "u-yes", "role": "user", "content": "yes, go ahead"}
    second = stream(served, {**body, "runId": uuid.uuid4().hex, "resume": resume,
                             "messages": [*body["messages"], said]})
    assert second[-1].type == EventType.RUN_FINISHED
    assert second[-1].outcome is None
    state = httpx.get(f"{served.url}/threads/{body['threadId']}/state").json()["values"]
    assert state["approved"] == "yes"
    # The message sent beside the answer was added before the paused node went on.
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == \
        ["please approve this", "yes, go ahead", "review: yes"]


def test_forwarded_props_command_resumes_as_langgraphs_integration_does(served: Served) -> None:
    body = run_input("approve, please")
    assert stream(served, body)[-1].outcome.type == "interrupt"
    command = {"command": {"resume": "no"}}
    stream(served, {**body, "runId": uuid.uuid4().hex, "forwardedProps": command})
    state = httpx.get(f"{served.url}/threads/{body['threadId']}/state").json()["values"]
    assert state["approved"] == "no"


def test_a_second_turn_adds_only_the_new_messages_to_the_thread(served: Served) -> None:
    body = run_input("hello")
    events = stream(served, body)
    answer = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
    message_id = next(e.message_id for e in events if e.type == EventType.TEXT_MESSAGE_START)
    history = [*body["messages"], {"id": message_id, "role": "assistant", "content": answer},
               {"id": "u2", "role": "user", "content": "again"}]
    stream(served, {**body, "runId": uuid.uuid4().hex, "messages": history})
    state = httpx.get(f"{served.url}/threads/{body['threadId']}/state").json()["values"]
    assert [m["id"] for m in state["messages"]][:3] == [m["id"] for m in history]
    assert len(state["messages"]) == 4


def test_a_failing_run_ends_with_run_error(served: Served) -> None:
    events = stream(served, run_input("fail now"))
    assert events[-1].type == EventType.RUN_ERROR
    assert "the model broke down" in events[-1].message
    assert "RUN_FINISHED" not in types(events)


@pytest.mark.parametrize(("body", "field"), [
    ({"runId": "r", "messages": []}, "threadId"),
    ({"threadId": "t", "messages": []}, "runId"),
    ({"threadId": "t", "runId": "r", "messages": {}}, "messages"),
    ({"threadId": "t", "runId": "r", "messages": [{"role": "user"}]}, "messages[0]"),
    ({"threadId": "t", "runId": "r", "messages": [{"id": "m", "role": "robot"}]},
     "messages[0].role"),
    ({"threadId": "t", "runId": "r", "messages": [], "state": []}, "state"),
    ({"threadId": "t", "runId": "r", "messages": [], "resume": [{"status": "resolved"}]},
     "resume"),
    ({"threadId": "t", "runId": "r", "messages": [], "forwardedProps": {"on_disconnect": "x"}},
     "forwardedProps.on_disconnect"),
])
def test_bad_input_is_refused_naming_the_field(served: Served, body: dict[str, Any],
                                               field: str) -> None:
    r = httpx.post(f"{served.url}/ag-ui/chat", json=body)
    assert r.status_code == 422
    assert f"'{field}'" in r.json()["detail"]


def test_an_unknown_graph_is_404(served: Served) -> None:
    r = httpx.post(f"{served.url}/ag-ui/nope", json=run_input("hi"))
    assert r.status_code == 404
    assert "nope" in r.json()["detail"]
    assert httpx.post(f"{served.url}/ag-ui/nope/connect", json=run_input("hi")).status_code \
        == 404


def test_connect_refuses_an_unknown_thread_or_no_thread_id(served: Served) -> None:
    r = httpx.post(f"{served.url}/ag-ui/chat/connect", json={"threadId": "t-never-made"})
    assert r.status_code == 404
    r = httpx.post(f"{served.url}/ag-ui/chat/connect", json={"messages": []})
    assert r.status_code == 422
    assert "'threadId'" in r.json()["detail"]


def test_a_client_that_leaves_a_continuing_run_leaves_it_running(served: Served) -> None:
    body = run_input("slow, please", forwardedProps={"on_disconnect": "continue"})
    with httpx.stream("POST", f"{served.url}/ag-ui/chat", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if "TEXT_MESSAGE_CONTENT" in line:
                break  # leave mid-answer
    events = [_EVENT.validate_python(orjson.loads(line[6:])) for line in httpx.post(
        f"{served.url}/ag-ui/chat/connect", json=body, timeout=30).text.splitlines()
        if line.startswith("data: ")]
    assert (types(events)[0], types(events)[-1]) == ("RUN_STARTED", "RUN_FINISHED")
    [run] = httpx.get(f"{served.url}/threads/{body['threadId']}/runs").json()
    assert run["status"] == "success"


def test_a_client_that_leaves_cancels_the_run(served: Served) -> None:
    body = run_input("slow, please")
    with httpx.stream("POST", f"{served.url}/ag-ui/chat", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if "TEXT_MESSAGE_CONTENT" in line:
                break  # leave mid-answer
    deadline = time.monotonic() + 20
    while True:
        [run] = httpx.get(f"{served.url}/threads/{body['threadId']}/runs").json()
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert run["status"] == "interrupted"


def test_a_recorded_vendor_stream_arrives_whole(served: Served,
                                                replay_server: ReplayServer) -> None:
    """DeepSeek's reasoning and text, and OpenAI's tool call, as recorded, over real HTTP."""
    expected = recording(RECORDED_REASONING)["expected"]
    events = stream(served, run_input(scripted(replay_server, RECORDED_REASONING)), "replay")
    assert "".join(e.delta for e in events
                   if e.type == EventType.REASONING_MESSAGE_CONTENT) == expected["reasoning"]
    assert "".join(e.delta for e in events
                   if e.type == EventType.TEXT_MESSAGE_CONTENT) == expected["text"]

    [call] = recording(RECORDED_TOOL_CALL)["expected"]["tool_calls"]
    events = stream(served, run_input(scripted(replay_server, RECORDED_TOOL_CALL)), "replay")
    [start] = [e for e in events if e.type == EventType.TOOL_CALL_START]
    assert (start.tool_call_id, start.tool_call_name) == (call["id"], call["name"])
    assert "".join(e.delta for e in events if e.type == EventType.TOOL_CALL_ARGS) == \
        call["arguments"]
    assert types(events).count("TOOL_CALL_END") == 1

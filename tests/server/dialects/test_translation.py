"""The pure translations: token deltas into parts, states into JSON Patches, and a run's
events into AG-UI events (checked by ag-ui-protocol) and AI SDK chunks."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from ag_ui.core import Event as AguiEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from chronos.server.dialects._parts import MessageParts
from chronos.server.dialects._patch import diff
from chronos.server.dialects._run import RunEnd
from chronos.server.dialects.agui import AguiTranslator
from chronos.server.dialects.aisdk import UIMessageTranslator
from chronos.stream import GAP, Event


def token(node: str, **delta: Any) -> Event:
    return Event("token", {"node_id": node, "data": {"message_id": "m1", **delta}, "path": []})


def test_fragments_before_the_call_has_its_id_and_name_are_sent_once_it_does() -> None:
    parts = MessageParts()
    out = parts.token("n", {"message_id": "m", "tool_call_deltas": [
        {"index": 0, "arguments": '{"a"'}]})
    assert out == []
    out = parts.token("n", {"message_id": "m", "tool_call_deltas": [
        {"index": 0, "id": "c1", "name": "f", "arguments": ": 1}"}]})
    assert out == [("tool-start", "c1", "f", "m"), ("tool-delta", "c1", '{"a"', None),
                   ("tool-delta", "c1", ": 1}", None)]
    out = parts.token("n", {"message_id": "m", "tool_calls": [
        {"id": "c1", "name": "f", "arguments": '{"a": 1}'}]})
    assert out == [("tool-end", "c1", "f", '{"a": 1}')]
    assert parts.close_node("n") == []


def test_a_complete_call_never_streamed_stands_for_its_whole_part() -> None:
    parts = MessageParts()
    parts.token("n", {"message_id": "m", "content": "hi"})
    out = parts.token("n", {"message_id": "m", "tool_calls": [
        {"id": "c1", "name": "f", "arguments": "{}"}]})
    assert out == [("text-end", "m", None, None), ("tool-start", "c1", "f", "m"),
                   ("tool-delta", "c1", "{}", None), ("tool-end", "c1", "f", "{}")]


def test_a_node_end_closes_only_that_nodes_messages() -> None:
    parts = MessageParts()
    parts.token("a", {"message_id": "ma", "reasoning": "hm"})
    parts.token("b", {"message_id": "mb", "content": "x"})
    assert parts.close_node("a") == [("reasoning-end", "ma-reasoning", None, None)]
    assert parts.close_all() == [("text-end", "mb", None, None)]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet="ab/~", max_size=3), inner, max_size=3), max_leaves=8)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.text(alphabet="ab/~", max_size=3), _JSON, max_size=4),
       st.dictionaries(st.text(alphabet="ab/~", max_size=3), _JSON, max_size=4))
def test_the_patch_turns_one_state_into_the_next(before: dict[str, Any],
                                                 after: dict[str, Any]) -> None:
    assert jsonpatch.apply_patch(copy.deepcopy(before), diff(before, after)) == after


def test_a_growing_list_is_patched_by_appending() -> None:
    assert diff({"m": [1]}, {"m": [1, 2, 3]}) == [
        {"op": "add", "path": "/m/-", "value": 2}, {"op": "add", "path": "/m/-", "value": 3}]


_RUN = [
    Event("node_start", {"node_id": "n", "path": []}),
    token("n", reasoning="hm"),
    token("n", content="Hel"),
    token("n", content="lo"),
    token("n", tool_call_deltas=[{"index": 0, "id": "c1", "name": "f", "arguments": "{}"}]),
    Event("custom", {"node_id": "n", "name": "progress", "data": {"i": 1}, "path": []}),
    Event("token", {"node_id": "inner", "data": {"message_id": "s", "content": "x"},
                    "path": ["n"]}),  # a subgraph's: left out
    Event("node_end", {"node_id": "n", "data": {"k": 1}, "state": {"k": 1}, "path": []}),
    Event("node_start", {"node_id": "n2", "path": []}),  # still running when the run ends
]


@pytest.mark.parametrize("end", [RunEnd("success"), RunEnd("interrupted"),
                                 RunEnd("error", "boom", "NodeError"), None])
def test_every_agui_event_is_valid_and_every_opened_thing_closes(end: RunEnd | None) -> None:
    t = AguiTranslator("t", "r")
    events = t.started() + t.snapshot({"values": {}}) + t.snapshot({"values": {"x": 1}})
    for event in _RUN:
        events += t.translate(event)
    events += t.finished(end)
    adapter: TypeAdapter[Any] = TypeAdapter(AguiEvent)
    for event in events:
        adapter.validate_python(event)
    kinds = [e["type"] for e in events]
    assert kinds.count("STATE_SNAPSHOT") == 1
    assert [e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT"] == ["Hel", "lo"]
    assert {"type": "STATE_DELTA", "delta": [{"op": "add", "path": "/k", "value": 1}]} in events
    if end is not None and end.status != "error":
        assert kinds.count("STEP_STARTED") == kinds.count("STEP_FINISHED") == 2
        assert kinds[-1] == "RUN_FINISHED"
    else:
        assert kinds[-1] == "RUN_ERROR"


def test_ai_sdk_chunks_open_and_close_in_order() -> None:
    t = UIMessageTranslator("r")
    chunks = t.started() + t.started()
    for event in _RUN:
        chunks += t.translate(event)
    chunks += t.finished(RunEnd("success"))
    kinds = [c["type"] for c in chunks]
    assert kinds == ["start", "start-step", "reasoning-start", "reasoning-delta",
                     "reasoning-end", "text-start", "text-delta", "text-delta", "text-end",
                     "tool-input-start", "tool-input-delta", "data-progress",
                     "tool-input-available", "finish-step", "start-step", "finish-step",
                     "finish"]
    assert chunks[12] == {"type": "tool-input-available", "toolCallId": "c1", "toolName": "f",
                          "input": {}}


@pytest.mark.parametrize("translator", [UIMessageTranslator("r"), AguiTranslator("t", "r")])
def test_after_a_gap_only_pauses_show_and_the_answer_comes_whole(
        translator: UIMessageTranslator | AguiTranslator) -> None:
    out = translator.translate(_RUN[0]) + translator.translate(token("n", content="Hel"))
    closed = translator.translate(Event(GAP, {"missed": 3}))
    assert translator.lost
    assert [c["type"] for c in closed] in (["text-end"], ["TEXT_MESSAGE_END"])
    later = [translator.translate(e) for e in _RUN[2:]]
    assert later == [[]] * len(later)  # the message would have holes: nothing of it is shown
    paused = translator.translate(Event("interrupt", {"node_id": "n", "path": [],
                                                      "data": [{"id": "q", "value": "ok?"}]}))
    if isinstance(translator, AguiTranslator):  # AG-UI shows it in RUN_FINISHED
        assert translator.finished(RunEnd("success"))[-1]["outcome"]["type"] == "interrupt"
    else:
        assert [p["type"] for p in paused] == ["data-interrupt"]
    whole = translator.whole_answer({"messages": [{"role": "assistant", "content": "Hello"}]},
                                    "m")
    assert [w.get("delta") for w in whole] == [None, "Hello", None]
    assert out

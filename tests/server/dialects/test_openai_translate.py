"""The OpenAI dialect's translation of token deltas, run by run (pure, no server)."""

from __future__ import annotations

from typing import Any

import orjson

from chronos.server.dialects._openai_chat import ChatCompletion
from chronos.server.dialects._openai_responses import Response


def token(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"message_id": message_id, "content": "", "reasoning": "", "tool_call_deltas": [],
            "tool_calls": [], **fields}


def fragment(index: int, arguments: str, id: str | None = None,
             name: str | None = None) -> dict[str, Any]:
    return {"index": index, "id": id, "name": name, "arguments": arguments}


def test_two_model_calls_tool_calls_do_not_collide_and_the_last_call_decides_the_finish() -> None:
    completion = ChatCompletion("chatcmpl-1", "agent")
    tokens = [
        token("m1", tool_call_deltas=[fragment(0, "", "call_a", "search")]),
        token("m1", tool_call_deltas=[fragment(0, '{"q": 1}')]),
        token("m2", tool_call_deltas=[fragment(0, "{}", "call_b", "fetch")]),
    ]
    for t in tokens:
        delta = completion.delta(t)
        assert delta is not None
        completion.add(delta)
    whole = completion.whole()["choices"][0]
    calls = whole["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("call_a", "search", '{"q": 1}'), ("call_b", "fetch", "{}")]
    assert whole["finish_reason"] == "tool_calls"
    completion.delta(token("m3", content="done"))
    assert completion.finish_reason == "stop"


def test_a_whole_tool_call_without_fragments_is_one_delta_and_not_repeated() -> None:
    completion = ChatCompletion("chatcmpl-1", "agent")
    whole_call = {"id": "call_c", "name": "add", "arguments": '{"a": 1}'}
    delta = completion.delta(token("m1", tool_calls=[whole_call]))
    assert delta == {"tool_calls": [{"index": 0, "id": "call_c", "type": "function",
                                     "function": {"name": "add", "arguments": '{"a": 1}'}}]}
    # Streamed as fragments first, the complete call that follows adds nothing.
    streamed = ChatCompletion("chatcmpl-2", "agent")
    streamed.delta(token("m1", tool_call_deltas=[fragment(0, '{"a": 1}', "call_c", "add")]))
    assert streamed.delta(token("m1", tool_calls=[whole_call])) is None


def test_chunks_are_valid_json_with_the_delta_and_finish_reason() -> None:
    completion = ChatCompletion("chatcmpl-1", "agent", include_usage=True)
    first = orjson.loads(completion.first_chunk().removeprefix(b"data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    delta = completion.delta(token("m1", content="hé", reasoning="hm"))
    assert delta is not None
    chunk = orjson.loads(completion.chunk(delta).removeprefix(b"data: "))
    assert chunk["choices"] == [{"index": 0, "delta": {"content": "hé", "reasoning_content": "hm"},
                                 "logprobs": None, "finish_reason": None}]
    assert (chunk["id"], chunk["object"], chunk["model"]) == ("chatcmpl-1",
                                                              "chat.completion.chunk", "agent")
    frames = completion.last_chunks().split(b"\n\n")
    assert orjson.loads(frames[0].removeprefix(b"data: "))["choices"][0]["finish_reason"] == "stop"
    assert orjson.loads(frames[1].removeprefix(b"data: "))["choices"] == []
    assert frames[2] == b"data: [DONE]"


def test_a_final_state_answer_in_either_message_form() -> None:
    openai_form = {"messages": [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": [{"type": "text", "text": "yo"}],
                                 "tool_calls": [{"id": "c1", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}]}
    chronos_form = {"messages": [{"role": "assistant", "content": "yo", "name": None,
                                  "tool_call_id": None, "tool_calls": [
                                      {"id": "c1", "name": "f", "arguments": "{}",
                                       "signature": None}]}]}
    for values in (openai_form, chronos_form):
        completion = ChatCompletion("chatcmpl-1", "agent")
        assert completion.answer_delta(values) == {"content": "yo", "tool_calls": [
            {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]}
        assert completion.finish_reason == "tool_calls"
    assert ChatCompletion("x", "agent").answer_delta({"draft": "no messages"}) is None


def _events(frames: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(block.split(b"\ndata: ", 1)[1])
            for block in frames.split(b"\n\n") if block]


def test_responses_items_open_in_arrival_order_and_close_when_the_next_call_begins() -> None:
    response = Response("resp_1", "agent")
    events = _events(response.opening())
    events += _events(response.token(token("m1", reasoning="think")))
    events += _events(response.token(token("m1", content="a")))
    events += _events(response.token(token("m1", content="b")))
    events += _events(response.token(token("m2", tool_call_deltas=[
        fragment(0, '{"x"', "call_1", "f")])))
    events += _events(response.token(token("m2", tool_call_deltas=[fragment(0, ": 1}")])))
    events += _events(response.completed())
    kinds = [e["type"] for e in events]
    # m1's two items close (in output order) before m2's function call opens.
    closing = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert closing == [0, 1, 2]
    assert kinds.index("response.output_item.done") < \
        max(i for i, k in enumerate(kinds) if k == "response.output_item.added")
    assert [e["sequence_number"] for e in events] == list(range(1, len(events) + 1))
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [(i["type"], i["status"]) for i in final["output"]] == [
        ("reasoning", "completed"), ("message", "completed"), ("function_call", "completed")]
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "think"}]
    assert final["output"][1]["content"][0]["text"] == "ab"
    assert (final["output"][2]["call_id"], final["output"][2]["arguments"]) == ("call_1",
                                                                                 '{"x": 1}')


def test_a_failed_response_closes_its_items_then_says_error_and_failed() -> None:
    response = Response("resp_1", "agent")
    response.token(token("m1", content="partial"))
    events = _events(response.failed("it broke", "NodeError"))
    assert [e["type"] for e in events][-3:] == ["response.output_item.done", "error",
                                                "response.failed"]
    assert events[-2]["message"] == "it broke"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "it broke"}

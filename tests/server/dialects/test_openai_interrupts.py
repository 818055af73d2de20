"""What the OpenAI routes make of a run that pauses, of a subgraph's tokens and of custom
events, read by the official `openai` SDK against `chronos serve`.

A pause is a call of the function `interrupt` (finish reason "tool_calls"; a Responses
`function_call` item), and the tool result for it, sent back as any tool-calling client does,
resumes the paused thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.server.api_server import Served, serving

_GRAPHS = tuple(f"tests.server.dialects.openai_graphs:{name}"
                for name in ("asking", "nested", "nested_asking"))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(*_GRAPHS) as s:
        yield s


def _thread_of(call_id: str) -> str:
    assert call_id.startswith("call_interrupt_")
    return call_id[len("call_interrupt_"):].rpartition("_")[0]


def test_a_pause_streams_as_an_interrupt_call_and_its_tool_result_resumes_the_run(
        client: openai.OpenAI, served: Served) -> None:
    question = [{"role": "user", "content": "write it"}]
    with client.chat.completions.stream(model="asking", messages=question) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Draft ready."  # custom events are not shown
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "interrupt"
    assert json.loads(call.function.arguments) == {"question": "publish?"}
    # The paused thread is kept (a run that did not pause leaves nothing behind).
    thread_id = _thread_of(call.id)
    assert httpx.get(f"{served.url}/threads/{thread_id}/state").json()["next"] == ["review"]

    answered = [*question, choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "yes"}]
    chunks = list(client.chat.completions.create(model="asking", messages=answered,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "published: yes"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Answered and ended: the thread went, and the same answer again finds nothing to resume.
    assert httpx.get(f"{served.url}/threads/{thread_id}").status_code == 404
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="asking", messages=answered)
    assert (caught.value.code, caught.value.param) == ("interrupt_not_found", "messages")


@pytest.mark.parametrize("model", ["asking", "nested_asking"])
def test_a_whole_answer_pauses_and_resumes_alike(client: openai.OpenAI, model: str) -> None:
    """Also when the pause is inside a subgraph."""
    question = [{"role": "user", "content": "write it"}]
    paused = client.chat.completions.create(model=model, messages=question)
    assert paused.choices[0].finish_reason == "tool_calls"
    [call] = paused.choices[0].message.tool_calls or []
    answer = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"ok": True})}
    done = client.chat.completions.create(
        model=model,
        messages=[*question, paused.choices[0].message.model_dump(exclude_none=True), answer])
    assert done.choices[0].message.content == "published: {'ok': True}"  # read as JSON
    assert done.choices[0].finish_reason == "stop"


def test_responses_pause_as_a_function_call_item_answered_by_its_output(
        client: openai.OpenAI) -> None:
    with client.responses.stream(model="asking", input="write it") as stream:
        paused = stream.get_final_response()
    assert paused.output_text == "Draft ready."
    [call] = [item for item in paused.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("interrupt", {"question": "publish?"})
    done = client.responses.create(model="asking", input=[
        {"role": "user", "content": "write it"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "no"}])
    assert done.output_text == "published: no"
    assert [item.type for item in done.output] == ["message"]


def test_an_answer_for_another_model_or_a_malformed_call_id_is_refused(
        client: openai.OpenAI, served: Served) -> None:
    paused = client.chat.completions.create(model="asking", messages=[
        {"role": "user", "content": "write it"}])
    message = paused.choices[0].message.model_dump(exclude_none=True)
    [call] = paused.choices[0].message.tool_calls or []

    def answering(call_id: str) -> list[Any]:
        return [{"role": "user", "content": "write it"}, message,
                {"role": "tool", "tool_call_id": call_id, "content": "yes"}]

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nested", messages=answering(call.id))
    assert caught.value.code == "interrupt_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="asking", messages=answering("call_interrupt_x"))
    assert (bad.value.code, bad.value.param) == ("invalid_value", "messages")
    # Still paused, and still answerable.
    done = client.chat.completions.create(model="asking", messages=answering(call.id))
    assert done.choices[0].message.content == "published: yes"


def test_a_subgraphs_tokens_stream_as_content(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="nested", messages=[{"role": "user", "content": "hi"}], stream=True))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    assert [d for d in deltas if d] == ["from ", "inside."]
    assert chunks[-1].choices[0].finish_reason == "stop"
    events = list(client.responses.create(model="nested", input="hi", stream=True))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == \
        ["from ", "inside."]

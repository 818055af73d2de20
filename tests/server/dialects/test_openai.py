"""The OpenAI-compatible routes read by the official `openai` SDK, against `chronos serve`.

The `replay` graph streams recorded vendor streams (DeepSeek's reasoning, OpenAI's tool calls)
from the replay server, so what the SDK rebuilds can be checked against each recording's
`expected` answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.model.replay import ReplayServer, Reply
from tests.server.api_server import Served, serving

_STREAMS = Path(__file__).resolve().parents[2] / "fixtures" / "vendor-streams"
REASONING = ("deepseek/"
             "pydantic-ai__models__test_deepseek__test_deepseek_model_thinking_stream__0.json")
TOOL_CALL = "openai/llm__test_tools__test_tool_use_basic__0.json"
_GRAPHS = tuple(f"tests.server.dialects.openai_graphs:{name}"
                for name in ("replay", "plain", "failing", "slow"))


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_STREAMS / name).read_text())
    return data


def scripted(replay_server: ReplayServer, name: str) -> str:
    """The replay URL that streams recording `name` once: the `replay` graph's prompt."""
    body = recording(name)["response"]["body"].encode()
    return replay_server.script(Reply(body=body)).base_url


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(*_GRAPHS) as s:
        yield s


def ask(prompt: str) -> list[Any]:
    return [{"role": "user", "content": prompt}]


# Chat completions.


def test_chat_stream_carries_content_and_reasoning(client: openai.OpenAI,
                                                   replay_server: ReplayServer) -> None:
    expected = recording(REASONING)["expected"]
    chunks = list(client.chat.completions.create(
        model="replay", messages=ask(scripted(replay_server, REASONING)), stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == expected["text"]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == \
        expected["reasoning"]
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {"replay"}


def test_chat_stream_helper_rebuilds_tool_calls(client: openai.OpenAI,
                                               replay_server: ReplayServer) -> None:
    expected = recording(TOOL_CALL)["expected"]
    with client.chat.completions.stream(
            model="replay", messages=ask(scripted(replay_server, TOOL_CALL))) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in choice.message.tool_calls or []]
    assert calls == expected["tool_calls"]


def test_chat_whole_answer(client: openai.OpenAI, replay_server: ReplayServer) -> None:
    expected = recording(REASONING)["expected"]
    completion = client.chat.completions.create(
        model="replay", messages=ask(scripted(replay_server, REASONING)))
    message = completion.choices[0].message
    assert completion.object == "chat.completion"
    assert message.role == "assistant"
    assert message.content == expected["text"]
    assert getattr(message, "reasoning_content", None) == expected["reasoning"]
    assert completion.choices[0].finish_reason == "stop"


def test_chat_whole_tool_calls(client: openai.OpenAI, replay_server: ReplayServer) -> None:
    expected = recording(TOOL_CALL)["expected"]
    completion = client.chat.completions.create(
        model="replay", messages=ask(scripted(replay_server, TOOL_CALL)))
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in completion.choices[0].message.tool_calls or []]
    assert calls == expected["tool_calls"]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_include_usage_ends_with_the_model_calls_usage(client: openai.OpenAI,
                                                       replay_server: ReplayServer) -> None:
    expected = recording(REASONING)["expected"]["usage"]
    chunks = list(client.chat.completions.create(
        model="replay", messages=ask(scripted(replay_server, REASONING)), stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        expected["prompt_tokens"], expected["completion_tokens"], expected["total_tokens"])
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == \
        expected["completion_tokens_details"]["reasoning_tokens"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    # Without the option, no usage chunk; a graph without a model call has no usage to give.
    plain = list(client.chat.completions.create(model="plain", messages=ask("hi"),
                                                stream=True, stream_options={
                                                    "include_usage": True}))
    assert plain[-1].choices == []
    assert plain[-1].usage is None
    unasked = list(client.chat.completions.create(model="plain", messages=ask("hi"),
                                                  stream=True))
    assert unasked[-1].choices[0].finish_reason == "stop"


def test_whole_answers_carry_usage(client: openai.OpenAI, replay_server: ReplayServer) -> None:
    expected = recording(TOOL_CALL)["expected"]["usage"]
    completion = client.chat.completions.create(
        model="replay", messages=ask(scripted(replay_server, TOOL_CALL)))
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens,
            completion.usage.total_tokens) == (expected["prompt_tokens"],
                                               expected["completion_tokens"],
                                               expected["total_tokens"])
    response = client.responses.create(model="replay", input=scripted(replay_server, TOOL_CALL))
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens,
            response.usage.total_tokens) == (expected["prompt_tokens"],
                                             expected["completion_tokens"],
                                             expected["total_tokens"])


def test_a_graph_that_did_not_stream_answers_with_its_last_assistant_message(
        client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="plain", messages=ask("hello"),
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hello"
    whole = client.chat.completions.create(model="plain", messages=ask("hello"))
    assert whole.choices[0].message.content == "echo: hello"
    response = client.responses.create(model="plain", input="hello")
    assert response.output_text == "echo: hello"


def test_a_failed_run_is_an_error_in_the_stream_or_a_500(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="failing", messages=ask("hi"), stream=True)
    with pytest.raises(openai.APIError, match="the tool broke"):
        list(stream)
    with pytest.raises(openai.InternalServerError, match="the tool broke") as caught:
        client.chat.completions.create(model="failing", messages=ask("hi"))
    assert caught.value.code == "NodeError"
    with pytest.raises(openai.InternalServerError, match="the tool broke"):
        client.responses.create(model="failing", input="hi")
    events = list(client.responses.create(model="failing", input="hi", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert "the tool broke" in events[-2].message
    assert events[-1].response.status == "failed"


# Responses.


def test_responses_stream_carries_reasoning_then_text(client: openai.OpenAI,
                                                      replay_server: ReplayServer) -> None:
    expected = recording(REASONING)["expected"]
    events = list(client.responses.create(
        model="replay", input=scripted(replay_server, REASONING), stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (reasoning, text) == (expected["reasoning"], expected["text"])
    # Reasoning came first, so its item is output 0; the message is output 1.
    assert kinds.index("response.reasoning_text.delta") < kinds.index("response.output_text.delta")
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == expected["text"]


def test_responses_stream_helper_rebuilds_function_calls(client: openai.OpenAI,
                                                        replay_server: ReplayServer) -> None:
    expected = recording(TOOL_CALL)["expected"]
    with client.responses.stream(model="replay",
                                 input=scripted(replay_server, TOOL_CALL)) as stream:
        argument_deltas = [e.delta for e in stream
                           if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    calls = [{"id": item.call_id, "name": item.name, "arguments": item.arguments}
             for item in final.output if item.type == "function_call"]
    assert calls == expected["tool_calls"]
    assert "".join(argument_deltas) == expected["tool_calls"][0]["arguments"]


def test_responses_whole_answer(client: openai.OpenAI, replay_server: ReplayServer) -> None:
    expected = recording(REASONING)["expected"]
    response = client.responses.create(
        model="replay", instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text",
                                             "text": scripted(replay_server, REASONING)}]}])
    assert response.status == "completed"
    assert response.output_text == expected["text"]
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert [c.text for c in reasoning[0].content or []] == [expected["reasoning"]]


# Models.


def test_models_list_the_graphs(client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["failing", "plain", "replay", "slow"]
    assert client.models.retrieve("plain").owned_by == "chronos"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


# Bad input: OpenAI's error shape, naming the field.


def test_an_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ask("hi"))
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="hi")


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "plain"}, "messages"),
    ({"model": "plain", "messages": []}, "messages"),
    ({"model": "plain", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"model": "plain", "messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "plain", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
     "stream"),
    ({"model": "plain", "messages": [{"role": "user", "content": "hi"}],
      "stream_options": {"include_usage": True}}, "stream_options"),
])
def test_malformed_chat_bodies_are_400s_naming_the_field(served: Served, body: dict[str, Any],
                                                         param: str) -> None:
    answer = httpx.post(f"{served.url}/v1/chat/completions", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param.split("[")[0] in error["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "plain"}, "input"),
    ({"model": "plain", "input": [{"type": "message", "role": "user", "content": 3}]},
     "input[0].content"),
    ({"model": "plain", "input": [{"type": "web_search_call"}]}, "input[0].type"),
    ({"model": "plain", "input": "hi", "instructions": ["x"]}, "instructions"),
])
def test_malformed_responses_bodies_are_400s_naming_the_field(
        served: Served, body: dict[str, Any], param: str) -> None:
    answer = httpx.post(f"{served.url}/v1/responses", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_a_body_that_is_not_json_is_a_400(served: Served) -> None:
    answer = httpx.post(f"{served.url}/v1/chat/completions", content=b"{nope",
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_an_unsupported_option_is_refused_not_ignored(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="plain", messages=ask("hi"), temperature=0.2)
    assert (caught.value.param, caught.value.code) == ("temperature", "unsupported_parameter")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="plain", messages=ask("hi"), n=2)
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="plain", input="hi", previous_response_id="resp_1")
    assert caught.value.param == "previous_response_id"


# Disconnects.


def test_a_client_that_leaves_cancels_the_run(client: openai.OpenAI, tmp_path: Path) -> None:
    for route in ("chat", "responses"):
        marker = tmp_path / f"{route}-cancelled"
        if route == "chat":
            stream: Any = client.chat.completions.create(model="slow", messages=ask(str(marker)),
                                                         stream=True)
        else:
            stream = client.responses.create(model="slow", input=str(marker), stream=True)
        for _ in zip(range(3), stream, strict=False):
            pass
        stream.close()
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, f"{route}: the run went on after the client left"
            time.sleep(0.05)


def test_a_client_that_leaves_a_whole_answer_cancels_the_run(served: Served,
                                                              tmp_path: Path) -> None:
    for route, body in (("chat/completions", {"messages": ask(str(tmp_path / "chat"))}),
                        ("responses", {"input": str(tmp_path / "responses")})):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{served.url}/v1/{route}", json={"model": "slow", **body}, timeout=1.0)
        marker = tmp_path / route.split("/")[0]
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, f"{route}: the run went on after the client left"
            time.sleep(0.05)

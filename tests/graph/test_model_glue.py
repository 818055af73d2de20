"""`graph.stream_chat`: a provider's response streamed into a run as token events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from chronos import graph, model, stream
from chronos.errors import EmitOutsideRunError, NodeError, ProviderError
from chronos.graph import _model_tokens
from chronos.model.llamacpp import LlamaCppProvider
from chronos.model.openai import OpenAIProvider
from tests.model.replay import ReplayServer, Reply

pytestmark = pytest.mark.anyio

STORY_REQUEST = model.ChatRequest(
    messages=[model.Message(role="user", content="Tell me a story about a robot")],
    max_tokens=12, temperature=0.0, seed=42,
)

# An OpenAI-compatible stream that thinks aloud, says a word, then calls a tool in fragments.
TOOL_STREAM = b"".join(
    b"data: " + orjson.dumps({"id": "resp-1", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
    for delta, finish in [
        ({"role": "assistant", "reasoning_content": "The user wants "}, None),
        ({"reasoning_content": "the weather."}, None),
        ({"content": "Checking."}, None),
        ({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                          "function": {"name": "weather", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}, "tool_calls"),
    ]
) + b"data: [DONE]\n\n"
TOOL_REQUEST = model.ChatRequest(
    messages=[model.Message(role="user", content="Weather in Oslo?")],
    tools=[model.ToolDefinition("weather", "The weather in a city")],
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def local() -> Iterator[LlamaCppProvider]:
    provider = LlamaCppProvider()
    yield provider
    provider._unload()


@pytest.fixture
async def replayed(replay_server: ReplayServer) -> AsyncIterator[OpenAIProvider]:
    script = replay_server.script(Reply(body=TOOL_STREAM), Reply(body=TOOL_STREAM))
    async with OpenAIProvider("gpt-x", base_url=script.base_url + "/v1", api_key="k") as p:
        yield p


def one_node_graph(node: graph.NodeFunction) -> graph.CompiledGraph:
    return (
        graph.StateGraph("g").add_node("chat", node).set_entry_point("chat")
        .set_finish_point("chat").compile()
    )


async def collect(events: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in events]


async def test_the_guides_chat_node_streams_every_token_of_the_local_model_in_order(
    local: LlamaCppProvider,
) -> None:
    async def chat_node(state: dict[str, Any]) -> dict[str, Any]:
        response = await graph.stream_chat(local, STORY_REQUEST)
        return {"response": response.content, "usage": response.usage}

    broker = stream.Broker()
    runner = graph.Runner(one_node_graph(chat_node), broker=broker)
    everything, messages = runner.stream(), runner.stream("messages")
    async with broker.subscribe("ui", topics=["s"]) as subscription:
        seen, tokens, result = await asyncio.gather(
            collect(everything), collect(messages), runner.run("s", {"query": "hi"}))
        published = [await subscription.__anext__() for _ in seen]
    await broker.aclose()

    types = [e.type for e in seen]
    first, last = types.index("token"), len(types) - 1 - types[::-1].index("token")
    assert types[:first] == ["node_start"]
    assert set(types[first:last + 1]) == {"token"}
    assert types[last + 1:] == ["node_end", "edge_transition", "completed"]
    token_events = seen[first:last + 1]
    assert {(e.node_id, e.run_id) for e in token_events} == {("chat", result.run_id)}
    assert len({e.data.message_id for e in token_events}) == 1
    text = "".join(e.data.content for e in token_events)
    assert text == result.state["response"] == (await local.chat(STORY_REQUEST)).content
    assert result.state["usage"].output_tokens == 12
    # Mode `messages` yields exactly these token events, then the run's end.
    assert tokens[:-1] == token_events
    assert tokens[-1].type == "completed"
    # The broker got the same events in the same order, and their JSON carries the deltas.
    assert [e.data["seq"] for e in published] == [e.seq for e in seen]
    wire = [orjson.loads(e.json()) for e in published[first:last + 1]]
    assert "".join(w["data"]["data"]["content"] for w in wire) == text
    assert {w["data"]["data"]["message_id"] for w in wire} == {token_events[0].data.message_id}
    # In-process subscribers get the same plain JSON object as SSE clients.
    assert [e.data["data"] for e in published[first:last + 1]] == [w["data"]["data"] for w in wire]


async def test_reasoning_and_tool_call_deltas_become_token_events(
    replayed: OpenAIProvider,
) -> None:
    async def chat_node(state: dict[str, Any]) -> dict[str, Any]:
        response = await graph.stream_chat(replayed, TOOL_REQUEST, message_id="m-1")
        return {"calls": response.tool_calls, "thought": response.reasoning}

    runner = graph.Runner(one_node_graph(chat_node))
    tokens, result = await asyncio.gather(collect(runner.stream("messages")),
                                          runner.run("s", {}))
    deltas = [e.data for e in tokens if e.type == "token"]
    assert {d.message_id for d in deltas} == {"m-1"}
    assert [d.reasoning for d in deltas if d.reasoning] == ["The user wants ", "the weather."]
    assert [d.content for d in deltas if d.content] == ["Checking."]
    fragments = [f for d in deltas for f in d.tool_call_deltas]
    assert (fragments[0].id, fragments[0].name) == ("call_1", "weather")
    assert "".join(f.arguments for f in fragments) == '{"city": "Oslo"}'
    calls = [c for d in deltas for c in d.tool_calls]
    assert calls == [model.ToolCall("call_1", "weather", '{"city": "Oslo"}')]
    assert list(result.state["calls"]) == calls
    assert result.state["thought"] == "The user wants the weather."


async def test_a_sync_node_streams_its_tokens_before_its_node_end(
    replayed: OpenAIProvider,
) -> None:
    def chat_node(state: dict[str, Any]) -> dict[str, Any]:  # runs in a worker thread
        return {"text": graph.stream_chat_sync(replayed, TOOL_REQUEST).content}

    runner = graph.Runner(one_node_graph(chat_node))
    seen, result = await asyncio.gather(collect(runner.stream()), runner.run("s", {}))
    types = [e.type for e in seen]
    assert types[0] == "node_start"
    assert types[1:-3] == ["token"] * 6
    assert types[-3:] == ["node_end", "edge_transition", "completed"]
    assert result.state["text"] == "Checking."


async def test_tokens_nobody_takes_are_numbered_but_never_built(
    replayed: OpenAIProvider, monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[model.ChatResponse] = []
    delta = _model_tokens._delta

    def counted(message_id: str, chunk: model.ChatResponse,
                usage: model.Usage | None) -> graph.MessageDelta:
        built.append(chunk)
        return delta(message_id, chunk, usage)

    monkeypatch.setattr(_model_tokens, "_delta", counted)

    async def chat_node(state: dict[str, Any]) -> dict[str, Any]:
        await graph.stream_chat(replayed, TOOL_REQUEST)
        return {}

    broker = stream.Broker()
    runner = graph.Runner(one_node_graph(chat_node), broker=broker)
    # As a served `runs.wait`: no reader, and a broker that takes no tokens.
    quiet = await runner.run("s-1", {}, broker_events={"node_end", "completed"})
    assert built == []
    loud = await runner.run("s-2", {})
    assert len(built) == 6
    assert quiet.seq == loud.seq  # numbered all the same
    await broker.aclose()


async def test_each_call_gets_its_own_message_id(replayed: OpenAIProvider) -> None:
    async def chat_node(state: dict[str, Any]) -> dict[str, Any]:
        await graph.stream_chat(replayed, TOOL_REQUEST)
        await graph.stream_chat(replayed, TOOL_REQUEST)
        return {}

    runner = graph.Runner(one_node_graph(chat_node))
    tokens, _ = await asyncio.gather(collect(runner.stream("messages")), runner.run("s", {}))
    ids = [e.data.message_id for e in tokens if e.type == "token"]
    assert len(ids) == 12
    assert len(set(ids[:6])) == len(set(ids[6:])) == 1
    assert ids[0] != ids[6]


async def test_a_provider_failing_mid_stream_fails_the_node_after_its_tokens(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(Reply(body=TOOL_STREAM[:300], end="abrupt"))

    async def chat_node(state: dict[str, Any]) -> dict[str, Any]:
        async with OpenAIProvider("gpt-x", base_url=script.base_url + "/v1", api_key="k") as p:
            await graph.stream_chat(p, TOOL_REQUEST)
        return {}

    runner = graph.Runner(one_node_graph(chat_node))
    seen, result = await asyncio.gather(collect(runner.stream()), runner.run("s", {}),
                                        return_exceptions=True)
    assert isinstance(seen, list)
    types = [e.type for e in seen]
    assert (types[0], types[-1]) == ("node_start", "error")
    assert "token" in types, "what arrived before the failure was streamed"
    assert isinstance(result, NodeError)
    assert isinstance(result.__cause__, ProviderError)


async def test_outside_a_run_it_fails_and_closes_the_response(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(Reply(body=TOOL_STREAM, pause=0.01))
    async with OpenAIProvider("gpt-x", base_url=script.base_url + "/v1", api_key="k") as p:
        with pytest.raises(EmitOutsideRunError):
            await graph.stream_chat(p, TOOL_REQUEST)
        # Closed on the way out (not when the provider's client closes), long before the
        # server finished sending.
        assert await asyncio.to_thread(script.exchanges[0].client_left.wait, 10)
    assert not script.exchanges[0].finished.is_set()

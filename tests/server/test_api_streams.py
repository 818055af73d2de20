"""Each stream mode, joins and replays, through the official `langgraph_sdk` clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client, get_sync_client

from tests.server.api_graphs import WORDS
from tests.server.api_server import Served, serving

pytestmark = pytest.mark.anyio

FINAL = {"steps": ["plan", "write", "review"], "text": "".join(WORDS)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.api_graphs:agent", "tests.server.api_graphs:approval",
                 "tests.server.api_graphs:tools") as s:
        yield s


async def _parts(served: Served, mode: Any, **kwargs: Any) -> list[tuple[str, Any]]:
    client = get_client(url=served.url)
    thread = await client.threads.create()
    return [(p.event, p.data) async for p in client.runs.stream(
        thread["thread_id"], "agent", input={"steps": []}, stream_mode=mode, **kwargs)]


async def test_values_is_the_input_then_the_state_after_each_node(served: Served) -> None:
    parts = await _parts(served, "values")
    assert parts[0][0] == "metadata"
    assert set(parts[0][1]) == {"run_id", "attempt"}
    assert [d for e, d in parts[1:]] == [
        {"steps": []}, {"steps": ["plan"]},
        {"steps": ["plan", "write"], "text": FINAL["text"]}, FINAL]
    assert {e for e, _ in parts[1:]} == {"values"}


async def test_updates_name_the_node(served: Served) -> None:
    parts = await _parts(served, "updates")
    assert [d for _, d in parts[1:]] == [
        {"plan": {"steps": ["plan"]}}, {"write": {"steps": ["write"], "text": FINAL["text"]}},
        {"review": {"steps": ["review"]}}]


async def test_custom_events_carry_the_emitted_data(served: Served) -> None:
    parts = await _parts(served, "custom")
    assert parts[1:] == [("custom", {"node": n}) for n in ("plan", "write", "review")]


async def test_events_tell_the_run_as_astream_events_would(served: Served) -> None:
    parts = await _parts(served, "events")
    events = [d for e, d in parts[1:]]
    assert {e for e, _ in parts[1:]} == {"events"}
    node = [("on_chain_start", None), ("on_custom_event", "progress")]
    done = [("on_chain_stream", None), ("on_chain_end", None)]
    model = [("on_chat_model_start", "chat_model"),
             *[("on_chat_model_stream", "chat_model")] * len(WORDS),
             ("on_chat_model_end", "chat_model")]
    expected = [("on_chain_start", "agent"),
                *[(k, n or "plan") for k, n in node + done],
                *[(k, n or "write") for k, n in node], *model,
                *[(k, n or "write") for k, n in done],
                *[(k, n or "review") for k, n in node + done],
                ("on_chain_end", "agent")]
    assert [(d["event"], d["name"]) for d in events] == expected
    graph_run = events[0]["run_id"]
    assert events[0]["data"] == {"input": {"steps": []}}
    assert events[-1]["data"] == {"output": FINAL}
    plan_start, plan_custom, plan_stream, plan_end = events[1:5]
    assert plan_start["parent_ids"] == [graph_run]
    assert plan_start["tags"] == ["graph:step:1"]
    assert plan_start["metadata"]["langgraph_node"] == "plan"
    assert plan_custom["data"] == {"node": "plan"}
    assert plan_end["run_id"] == plan_start["run_id"] != graph_run
    assert plan_end["data"] == {"input": {"steps": []}, "output": {"steps": ["plan"]}}
    assert plan_stream["data"] == {"chunk": {"steps": ["plan"]}}
    assert plan_stream["run_id"] == plan_start["run_id"]
    streamed = [d for d in events if d["event"] == "on_chat_model_stream"]
    assert [d["data"]["chunk"]["content"] for d in streamed] == WORDS
    write_run = events[5]["run_id"]
    assert {tuple(d["parent_ids"]) for d in streamed} == {(graph_run, write_run)}
    ended = next(d for d in events if d["event"] == "on_chat_model_end")
    assert ended["data"]["output"]["content"] == FINAL["text"]


async def test_messages_tuple_streams_each_token_with_its_node(served: Served) -> None:
    parts = await _parts(served, "messages-tuple")
    assert [e for e, _ in parts[1:]] == ["messages"] * len(WORDS)
    assert [chunk["content"] for _, (chunk, _meta) in parts[1:]] == WORDS
    assert {chunk["type"] for _, (chunk, _meta) in parts[1:]} == {"AIMessageChunk"}
    assert {meta["langgraph_node"] for _, (_chunk, meta) in parts[1:]} == {"write"}


async def test_messages_mode_gives_metadata_partials_and_the_complete_message(
    served: Served,
) -> None:
    parts = await _parts(served, "messages")
    events = [e for e, _ in parts[1:]]
    assert events == ["messages/metadata", *["messages/partial"] * len(WORDS),
                      "messages/complete"]
    assert parts[-2][1][0]["content"] == parts[-1][1][0]["content"] == "".join(WORDS)


async def test_debug_records_tasks_and_checkpoints(served: Served) -> None:
    parts = await _parts(served, "debug")
    kinds = [d["type"] for e, d in parts[1:] if e == "debug"]
    assert kinds.count("task") == 3
    assert kinds.count("task_result") == 3
    assert "checkpoint" in kinds


async def test_several_modes_at_once_interleave_in_run_order(served: Served) -> None:
    parts = await _parts(served, ["updates", "custom"])
    assert [e for e, _ in parts[1:]] == ["custom", "updates"] * 3


async def test_sync_client_and_stateless_run(served: Served) -> None:
    client = get_sync_client(url=served.url)
    parts = list(client.runs.stream(None, "agent", input={"steps": []}, stream_mode="updates"))
    assert [next(iter(p.data)) for p in parts[1:]] == ["plan", "write", "review"]
    assert client.runs.wait(None, "agent", input={"steps": []}) == FINAL


async def test_wait_join_and_background_join_stream_from_a_second_client(
    served: Served,
) -> None:
    first, second = get_client(url=served.url), get_client(url=served.url)
    thread = await first.threads.create()
    run = await first.runs.create(thread["thread_id"], "agent",
                                  input={"steps": [], "delay": 0.5}, stream_mode="updates")
    joined = [(p.event, p.data) async for p in second.runs.join_stream(
        thread["thread_id"], run["run_id"], stream_mode="updates")]
    assert joined[-1] == ("updates", {"review": {"steps": ["review"]}})
    assert await second.runs.join(thread["thread_id"], run["run_id"]) == {**FINAL, "delay": 0.5}
    assert (await first.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_join_stream_with_last_event_id_resumes_after_it(served: Served) -> None:
    client = get_client(url=served.url)
    thread = await client.threads.create()
    parts = [p async for p in client.runs.stream(
        thread["thread_id"], "agent", input={"steps": []}, stream_mode=["updates", "custom"])]
    run_id = parts[0].data["run_id"]
    cut = 2  # resume after the second event with an id
    resumed = [(p.event, p.data) async for p in client.runs.join_stream(
        thread["thread_id"], run_id, last_event_id=parts[cut].id,
        stream_mode=["updates", "custom"])]
    assert resumed == [(p.event, p.data) for p in parts[cut + 1:]]


async def test_a_failing_node_ends_the_stream_with_an_error(served: Served) -> None:
    client = get_client(url=served.url)
    parts = [(p.event, p.data) async for p in client.runs.stream(
        None, "agent", input={"steps": [], "fail": True}, stream_mode="updates")]
    assert parts[-1][0] == "error"
    assert "review failed on purpose" in parts[-1][1]["message"]
    result = await client.runs.wait(None, "agent", input={"fail": True}, raise_error=False)
    assert "review failed on purpose" in result["__error__"]["message"]


async def test_join_stream_from_the_first_event_with_last_event_id_minus_one(
    served: Served,
) -> None:
    client = get_client(url=served.url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "agent", input={"steps": []})  # an earlier run
    parts = [(p.event, p.data) async for p in client.runs.stream(
        thread["thread_id"], "agent", input={"steps": []}, stream_mode="updates")]
    run_id = parts[0][1]["run_id"]
    replayed = [(p.event, p.data) async for p in client.runs.join_stream(
        thread["thread_id"], run_id, last_event_id="-1", stream_mode="updates")]
    assert replayed == parts  # the run's metadata first, as when it started


async def test_debug_checkpoints_carry_values_and_next(served: Served) -> None:
    parts = await _parts(served, "debug")
    checkpoints = [d for e, d in parts[1:] if d["type"] == "checkpoint"]
    assert [(c["step"], c["payload"]["next"]) for c in checkpoints] == [
        (-1, ["__start__"]), (0, ["plan"]), (1, ["write"]), (2, ["review"]), (3, [])]
    assert checkpoints[0]["payload"]["values"] == {"steps": []}
    assert checkpoints[-1]["payload"]["values"] == FINAL
    tasks = [d for e, d in parts[1:] if d["type"] == "task"]
    assert [t["step"] for t in tasks] == [1, 2, 3]


async def test_a_new_thread_starts_with_empty_lists_for_append_keys(served: Served) -> None:
    client = get_client(url=served.url)
    parts = [(p.event, p.data) async for p in client.runs.stream(
        None, "agent", input={"topic": "t"}, stream_mode="values")]
    assert parts[1] == ("values", {"topic": "t", "steps": []})


async def test_tasks_and_checkpoints_modes_carry_the_bare_payloads(served: Served) -> None:
    parts = await _parts(served, ["tasks", "checkpoints"])
    tasks = [d for e, d in parts[1:] if e == "tasks"]
    assert [(t["name"], "result" in t) for t in tasks] == [
        ("plan", False), ("plan", True), ("write", False), ("write", True),
        ("review", False), ("review", True)]
    checkpoints = [d for e, d in parts[1:] if e == "checkpoints"]
    assert [c["next"] for c in checkpoints] == [
        ["__start__"], ["plan"], ["write"], ["review"], []]


async def test_reasoning_and_tool_calls_reach_the_message_chunks(served: Served) -> None:
    client = get_client(url=served.url)
    chunks = [p.data[0] async for p in client.runs.stream(
        None, "tools", input={}, stream_mode="messages-tuple") if p.event == "messages"]
    assert chunks[0]["additional_kwargs"] == {"reasoning_content": "look it up"}
    assert [c["tool_call_chunks"][0]["args"] for c in chunks[1:3]] == ['{"q": ', '"tea"}']
    assert chunks[1]["tool_call_chunks"][0]["name"] == "search"
    assert chunks[2]["tool_calls"] == [
        {"name": "search", "args": {"q": "tea"}, "id": "call-1", "type": "tool_call"}]
    # The call's usage closes it, as LangChain's `usage_metadata` (on that chunk only).
    assert [c["usage_metadata"] for c in chunks[:3]] == [None, None, None]
    assert chunks[3]["content"] == ""
    assert chunks[3]["usage_metadata"] == {
        "input_tokens": 40, "output_tokens": 12, "total_tokens": 52,
        "input_token_details": {"cache_read": 32}, "output_token_details": {"reasoning": 3}}


async def test_a_join_gets_what_the_run_was_started_to_stream(served: Served) -> None:
    """As on LangGraph's server: a run publishes what its own modes need, and a join asking
    for more gets only those (either messages mode matching the run's, in its format)."""
    client = get_client(url=served.url)
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    await client.runs.wait(thread_id, "agent", input={"steps": []})
    waited = (await client.runs.list(thread_id))[0]["run_id"]
    joined = [p.event async for p in client.runs.join_stream(
        thread_id, waited, last_event_id="-1", stream_mode=["messages-tuple", "custom", "values"])]
    assert joined == ["metadata"] + ["values"] * 4
    run = await client.runs.create(thread_id, "agent", input={"steps": []},
                                   stream_mode=["messages-tuple", "updates"])
    await client.runs.join(thread_id, run["run_id"])
    parts = [(p.event, p.data) async for p in client.runs.join_stream(
        thread_id, run["run_id"], last_event_id="-1", stream_mode=["messages", "custom"])]
    assert "".join(d[0]["content"] for e, d in parts if e == "messages") == "".join(WORDS)
    assert {e for e, _ in parts} == {"metadata", "messages"}

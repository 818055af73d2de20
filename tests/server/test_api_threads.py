"""Threads through `langgraph_sdk`: records, search, state, update_state, history, delete."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import NotFoundError

from tests.server.api_server import Served, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.api_graphs:agent", "tests.server.api_graphs:approval") as s:
        yield s


async def test_assistants_one_per_graph_by_assistant_or_graph_id(served: Served) -> None:
    client = get_client(url=served.url)
    found = await client.assistants.search()
    assert sorted(a["graph_id"] for a in found) == ["agent", "approval"]
    agent = next(a for a in found if a["graph_id"] == "agent")
    assert await client.assistants.get(agent["assistant_id"]) == agent
    assert await client.assistants.get("agent") == agent
    drawing = await client.assistants.get_graph("agent")
    assert {(e["source"], e["target"]) for e in drawing["edges"]} == {
        ("__start__", "plan"), ("plan", "write"), ("write", "review"), ("review", "__end__")}
    assert (await client.assistants.get_schemas("agent"))["graph_id"] == "agent"


async def test_create_get_search_and_delete(served: Served) -> None:
    client = get_client(url=served.url)
    mine = await client.threads.create(metadata={"owner": "ann"})
    await client.threads.create(metadata={"owner": "bob"})
    assert (await client.threads.get(mine["thread_id"]))["metadata"] == {"owner": "ann"}
    found = await client.threads.search(metadata={"owner": "ann"})
    assert [t["thread_id"] for t in found] == [mine["thread_id"]]
    await client.runs.wait(mine["thread_id"], "approval", input={"steps": []})
    interrupted = await client.threads.search(status="interrupted")
    assert mine["thread_id"] in [t["thread_id"] for t in interrupted]
    await client.threads.delete(mine["thread_id"])
    with pytest.raises(NotFoundError):
        await client.threads.get(mine["thread_id"])
    # Its checkpoints went with it: the same id made again starts empty.
    again = await client.threads.create(thread_id=mine["thread_id"])
    assert again["values"] is None or again["values"] == {}
    assert (await client.threads.get_state(mine["thread_id"]))["values"] == {}
    assert await client.threads.get_history(mine["thread_id"]) == []


async def test_state_history_and_state_at_a_checkpoint(served: Served) -> None:
    client = get_client(url=served.url)
    thread = (await client.threads.create())["thread_id"]
    empty = await client.threads.get_state(thread)
    assert (empty["values"], empty["next"]) == ({}, [])
    await client.runs.wait(thread, "agent", input={"steps": []})
    state = await client.threads.get_state(thread)
    assert state["values"]["steps"] == ["plan", "write", "review"]
    assert state["next"] == []
    history = await client.threads.get_history(thread)
    assert [h["next"] for h in history] == [[], ["review"], ["write"], ["plan"]]
    assert history[0]["parent_checkpoint"]["checkpoint_id"] == \
        history[1]["checkpoint"]["checkpoint_id"]
    older = await client.threads.get_state(thread,
                                           checkpoint_id=history[2]["checkpoint"]["checkpoint_id"])
    assert older["values"]["steps"] == ["plan"]
    assert len(await client.threads.get_history(thread, limit=2)) == 2


async def test_update_state_as_node_sets_what_runs_next(served: Served) -> None:
    client = get_sync_client(url=served.url)
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "approval", input={"steps": []})  # paused before review
    written = client.threads.update_state(thread, {"steps": ["edited"]}, as_node="plan")
    state = client.threads.get_state(thread)
    assert state["checkpoint"]["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    assert state["values"]["steps"] == ["plan", "write", "edited"]
    assert state["next"] == ["write"]
    values = client.runs.wait(thread, "approval", input=None)  # write, then pause again
    assert values["steps"] == ["plan", "write", "edited", "write"]
    assert client.threads.get_state(thread)["next"] == ["review"]

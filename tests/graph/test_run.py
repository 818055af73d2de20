"""Running graphs: node kinds, reducers, parallel branches, routers, subgraphs, limits, errors."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest

from chronos import graph
from chronos.errors import NodeError, RunConflictError, StepLimitError

pytestmark = pytest.mark.anyio


def chain(*nodes: tuple[str, Any], reducers: dict[str, Any] | None = None) -> graph.CompiledGraph:
    g = graph.StateGraph("chain", reducers=reducers)
    for node_id, fn in nodes:
        g.add_node(node_id, fn)
    ids = [n for n, _ in nodes]
    g.set_entry_point(ids[0])
    for a, b in itertools.pairwise(ids):
        g.add_edge(a, b)
    return g.set_finish_point(ids[-1]).compile()


async def test_sync_async_and_inline_nodes_all_update_the_state() -> None:
    threads: dict[str, int] = {}

    async def fetch(state: dict[str, Any]) -> dict[str, Any]:
        threads["async"] = threading.get_ident()
        return {"doc": state["query"].upper()}

    def summarise(state: dict[str, Any]) -> dict[str, Any]:
        threads["sync"] = threading.get_ident()
        state["summary"] = state["doc"][:2]  # the guide's style: change the state, return it
        return state

    def count(state: dict[str, Any]) -> dict[str, Any]:
        threads["inline"] = threading.get_ident()
        return {"n": len(state["summary"])}

    g = (
        graph.StateGraph("g").add_node("fetch", fetch).add_node("summarise", summarise)
        .add_node("count", count, inline=True).set_entry_point("fetch")
        .add_edge("fetch", "summarise").add_edge("summarise", "count").set_finish_point("count")
        .compile()
    )
    result = await graph.Runner(g).run("s", {"query": "hello"})
    assert result.status == "completed"
    assert dict(result.state) == {"query": "hello", "doc": "HELLO", "summary": "HE", "n": 2}
    assert result.node_id == "count"
    assert result.session_id == "s"
    assert result.graph_id == "g"
    assert threads["sync"] != threads["async"] == threads["inline"] == threading.get_ident()


async def test_returning_the_whole_state_does_not_double_append() -> None:
    def add(state: dict[str, Any]) -> dict[str, Any]:
        state["log"] = [*state["log"], "added"]  # a new list: the whole list is the new value
        return state

    def note(state: dict[str, Any]) -> dict[str, Any]:
        return {"log": ["noted"]}

    g = chain(("add", add), ("note", note), reducers={"log": graph.replace})
    result = await graph.Runner(g).run("s", {"log": ["start"]})
    assert result.state["log"] == ["noted"]
    g2 = chain(("note", note), ("again", note), reducers={"log": graph.append})
    result2 = await graph.Runner(g2).run("s", {"log": ["start"]})
    assert result2.state["log"] == ["start", "noted", "noted"]


async def test_parallel_branches_run_concurrently_and_merge_deterministically() -> None:
    both_running = asyncio.Event()
    started: list[str] = []

    def branch(name: str, delay: float) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            started.append(name)
            if len(started) == 2:
                both_running.set()
            await asyncio.wait_for(both_running.wait(), 5)  # proves they overlap
            await asyncio.sleep(delay)
            return {"log": [name], "winner": name}

        return run

    g = (
        graph.StateGraph("fan", reducers={"log": graph.append})
        .add_node("plan", lambda s: {"log": ["plan"]}, inline=True)
        .add_node("slow", branch("slow", 0.02))
        .add_node("fast", branch("fast", 0))
        .add_node("join", lambda s: {"log": ["join"]}, inline=True)
        .set_entry_point("plan")
        .add_edge("plan", ["slow", "fast"])
        .add_edge(["slow", "fast"], "join")
        .set_finish_point("join")
        .compile()
    )
    result = await graph.Runner(g).run("s", {})
    # "fast" finished first, but updates merge in schedule order: slow, then fast.
    assert result.state["log"] == ["plan", "slow", "fast", "join"]
    assert result.state["winner"] == "fast"


async def test_a_failing_branch_cancels_its_sibling() -> None:
    cancelled = asyncio.Event()

    async def slow(state: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    async def boom(state: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bad input")

    g = (
        graph.StateGraph("g").add_node("slow", slow).add_node("boom", boom)
        .add_edge(graph.START, ["slow", "boom"]).add_edge(["slow", "boom"], graph.END).compile()
    )
    with pytest.raises(NodeError) as caught:
        await graph.Runner(g).run("s", {})
    assert caught.value.node_id == "boom"
    assert isinstance(caught.value.__cause__, ValueError)
    assert cancelled.is_set()


async def test_conditional_edges_loop_until_the_router_ends() -> None:
    g = (
        graph.StateGraph("loop")
        .add_node("inc", lambda s: {"n": s["n"] + 1}, inline=True)
        .set_entry_point("inc")
        .add_conditional_edge("inc", lambda s: "more" if s["n"] < 5 else "stop",
                              {"more": "inc", "stop": graph.END})
        .compile()
    )
    assert (await graph.Runner(g).run("s", {"n": 0})).state["n"] == 5


async def test_step_limit_stops_an_endless_loop() -> None:
    g = (
        graph.StateGraph("forever").add_node("spin", lambda s: None, inline=True)
        .set_entry_point("spin").add_conditional_edge("spin", lambda s: "spin").compile()
    )
    events = graph.Runner(g, step_limit=10)
    stream = events.stream()
    with pytest.raises(StepLimitError) as caught:
        await events.run("s", {})
    assert caught.value.limit == 10
    seen = [e async for e in stream]
    assert seen[-1].type == "error"
    assert "step limit of 10" in seen[-1].error
    assert sum(e.type == "node_start" for e in seen) == 10


async def test_node_error_is_wrapped_with_node_and_run_ids() -> None:
    def broken(state: dict[str, Any]) -> None:
        raise KeyError("missing")

    runner = graph.Runner(chain(("ok", lambda s: {"a": 1}), ("broken", broken)))
    stream = runner.stream()
    with pytest.raises(NodeError) as caught:
        await runner.run("s", {})
    events = [e async for e in stream]
    assert caught.value.node_id == "broken"
    assert caught.value.run_id == events[0].run_id
    assert isinstance(caught.value.__cause__, KeyError)
    assert events[-1].type == "error"
    assert events[-1].node_id == "broken"
    assert "KeyError" in events[-1].error


async def test_a_node_returning_a_non_mapping_is_a_clear_error() -> None:
    runner = graph.Runner(chain(("bad", lambda s: 42)))
    with pytest.raises(NodeError, match="returned int"):
        await runner.run("s", {})


async def test_subgraph_runs_on_the_parent_state_and_its_events_carry_the_path() -> None:
    inner = (
        graph.StateGraph("inner", reducers={"log": graph.append})
        .add_node("draft", lambda s: {"log": ["draft"], "text": "v1"}, inline=True)
        .add_node("polish", lambda s: {"log": ["polish"], "text": s["text"] + "!"}, inline=True)
        .set_entry_point("draft").add_edge("draft", "polish").set_finish_point("polish")
        .compile()
    )
    outer = (
        graph.StateGraph("outer", reducers={"log": graph.append})
        .add_node("start", lambda s: {"log": ["start"]}, inline=True)
        .add_subgraph("writer", inner)
        .set_entry_point("start").add_edge("start", "writer").set_finish_point("writer")
        .compile()
    )
    runner = graph.Runner(outer)
    stream = runner.stream()
    result = await runner.run("s", {"log": []})
    events = [e async for e in stream]
    assert result.state["log"] == ["start", "draft", "polish"]  # not appended twice
    assert result.state["text"] == "v1!"
    inner_ends = [(e.path, e.node_id) for e in events if e.type == "node_end" and e.path]
    assert inner_ends == [(("writer",), "draft"), (("writer",), "polish")]
    outer_ends = [e.node_id for e in events if e.type == "node_end" and not e.path]
    assert outer_ends == ["start", "writer"]


async def test_run_sync_from_plain_code() -> None:
    g = chain(("a", lambda s: {"n": s["n"] * 2}))
    result = await asyncio.to_thread(graph.Runner(g).run_sync, "s", {"n": 21})
    assert result.state["n"] == 42


async def test_the_same_session_cannot_run_twice_at_once() -> None:
    gate = asyncio.Event()

    async def wait(state: dict[str, Any]) -> None:
        await gate.wait()

    runner = graph.Runner(chain(("wait", wait)))
    first = asyncio.ensure_future(runner.run("s", {}))
    await asyncio.sleep(0.01)
    with pytest.raises(RunConflictError):
        await runner.run("s", {})
    gate.set()
    assert (await first).status == "completed"

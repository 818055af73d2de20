"""`Command(goto=..., update=...)` from nodes and resumes, and `Send` fan-out, on every store."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from chronos import graph
from chronos.errors import InvalidGraphError, NodeError
from chronos.store import CheckpointStore

pytestmark = pytest.mark.anyio


async def collect(stream: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in stream]


def fan_out_graph(calls: Counter[str], *, ask_at: int | None = None) -> graph.CompiledGraph:
    """split -> one `Send` per item to square -> total; item `ask_at` asks a question."""

    def split(state: dict[str, Any]) -> list[graph.Send]:
        return [graph.Send("square", {"item": i}) for i in state["items"]]

    async def square(arg: dict[str, Any]) -> dict[str, Any]:
        calls[f"square{arg['item']}"] += 1
        if arg["item"] == ask_at and graph.interrupt(f"keep {arg['item']}?") == "no":
            return {"squares": []}
        await asyncio.sleep(0.001 * (arg["item"] % 3))  # finish out of order
        return {"squares": [arg["item"] ** 2]}

    return (
        graph.StateGraph("fan", reducers={"squares": graph.append})
        .add_node("split", lambda s: None, inline=True).add_node("square", square)
        .add_node("total", lambda s: {"total": sum(s["squares"])}, inline=True)
        .set_entry_point("split").add_conditional_edges("split", split)
        .add_edge("square", "total").set_finish_point("total").compile()
    )


async def test_send_runs_a_branch_per_item_merged_in_send_order(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(fan_out_graph(calls), store)
    events = runner.stream()
    items = list(range(100))
    seen, result = await asyncio.gather(collect(events), runner.run("f", {"items": items}))
    assert result.status == "completed"
    assert result.state["squares"] == [i * i for i in items]
    assert result.state["total"] == sum(i * i for i in items)
    assert all(calls[f"square{i}"] == 1 for i in items)
    sends = [e for e in seen if e.type == "edge_transition" and e.node_id == "split"]
    assert [e.data for e in sends] == [{"from": "split", "to": "square", "send": {"item": i}}
                                       for i in items]
    # node_end events of the step come in Send order, each with its own update.
    ends = [e for e in seen if e.type == "node_end" and e.node_id == "square"]
    assert [dict(e.data) for e in ends] == [{"squares": [i * i]} for i in items]
    # "total" runs once, after all branches.
    assert [e.node_id for e in seen if e.type == "node_start"].count("total") == 1


async def test_a_paused_send_step_resumes_only_the_branch_that_asked(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(fan_out_graph(calls, ask_at=2), store)
    paused = await runner.run("f", {"items": [1, 2, 3]})
    assert paused.status == "paused"
    [question] = paused.interrupts
    assert (question.node_id, question.task, question.value) == ("square", "square[1]", "keep 2?")
    assert paused.next == ("square", "square", "square")
    latest = await store.latest("f")
    assert latest is not None
    assert latest.sends == (("square", {"item": 1}), ("square", {"item": 2}),
                            ("square", {"item": 3}))
    assert set(latest.pending) == {"square[0]", "square[2]"}

    done = await graph.Runner(fan_out_graph(calls, ask_at=2), store).resume("f", resume="no")
    assert done.state["squares"] == [1, 9]
    assert done.state["total"] == 10
    assert calls == Counter({"square1": 1, "square2": 2, "square3": 1})


async def test_send_to_an_unknown_node_fails_the_run_clearly(store: CheckpointStore) -> None:
    g = (
        graph.StateGraph("bad").add_node("a", lambda s: None, inline=True)
        .add_node("b", lambda s: None, inline=True)
        .set_entry_point("a").add_conditional_edges("a", lambda s: [graph.Send("nope", {})])
        .set_finish_point("b").compile()
    )
    runner = graph.Runner(g, store)
    with pytest.raises(NodeError, match="Send to unknown node 'nope' from 'a'") as caught:
        await runner.run("u", {})
    assert caught.value.node_id == "a"
    latest = await store.latest("u")
    assert latest is not None
    assert latest.status == "failed"


def routing_graph(calls: Counter[str]) -> graph.CompiledGraph:
    async def triage(state: dict[str, Any]) -> graph.Command:
        calls["triage"] += 1
        target = "urgent" if state["level"] > 5 else "later"
        return graph.Command(update={"seen": True}, goto=target)

    def leaf(name: str) -> Any:
        def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {"handled_by": name}

        return run

    return (
        graph.StateGraph("route").add_node("triage", triage, destinations=["urgent", "later"])
        .add_node("urgent", leaf("urgent"), inline=True)
        .add_node("later", leaf("later"), inline=True)
        .set_entry_point("triage").set_finish_point("urgent").set_finish_point("later")
        .compile()
    )


async def test_command_updates_and_chooses_the_next_node(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(routing_graph(calls), store)
    events = runner.stream()
    seen, result = await asyncio.gather(collect(events), runner.run("c", {"level": 9}))
    assert dict(result.state) == {"level": 9, "seen": True, "handled_by": "urgent"}
    assert [(e.type, e.node_id, e.data) for e in seen if e.type in ("node_end",
                                                                     "edge_transition")][:2] == [
        ("node_end", "triage", {"seen": True}),
        ("edge_transition", "triage", {"from": "triage", "to": "urgent"}),
    ]
    assert calls == Counter({"triage": 1, "urgent": 1})


async def test_command_goto_a_send_and_an_unknown_goto(store: CheckpointStore) -> None:
    async def fan(state: dict[str, Any]) -> graph.Command:
        return graph.Command(goto=[graph.Send("echo", {"v": 1}), graph.Send("echo", {"v": 2})])

    g = (
        graph.StateGraph("g", reducers={"vs": graph.append})
        .add_node("fan", fan, destinations=["echo"])
        .add_node("echo", lambda a: {"vs": [a["v"]]}, inline=True)
        .set_entry_point("fan").set_finish_point("echo").compile()
    )
    result = await graph.Runner(g, store).run("g", {})
    assert result.state["vs"] == [1, 2]

    def lost(state: dict[str, Any]) -> graph.Command:
        return graph.Command(goto="nowhere")

    bad = (graph.StateGraph("b").add_node("lost", lost, inline=True)
           .set_entry_point("lost").set_finish_point("lost").compile())
    with pytest.raises(NodeError, match="goto unknown node 'nowhere'"):
        await graph.Runner(bad, store).run("b", {})


async def test_a_resume_command_can_go_somewhere_else(store: CheckpointStore) -> None:
    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        return {"answer": graph.interrupt("continue?")}

    g = (
        graph.StateGraph("r").add_node("ask", ask, destinations=["fallback"])
        .add_node("fallback", lambda s: {"fell_back": True}, inline=True)
        .set_entry_point("ask").set_finish_point("fallback").compile()
    )
    runner = graph.Runner(g, store)
    assert (await runner.run("r", {})).status == "paused"
    done = await runner.resume("r", graph.Command(goto="fallback", update={"note": "skipped"}))
    assert dict(done.state) == {"note": "skipped", "fell_back": True}


async def test_an_unknown_destination_is_a_compile_error() -> None:
    with pytest.raises(InvalidGraphError, match="unknown destination 'ghost'"):
        (graph.StateGraph("d").add_node("a", lambda s: None, destinations=["ghost"])
         .set_entry_point("a").compile())

"""`graph.interrupt(value)` and resuming with answers, on every store."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

import pytest

from chronos import graph
from chronos.errors import ConfigurationError, GraphError, InterruptNotFound
from chronos.store import CheckpointStore

pytestmark = pytest.mark.anyio


async def collect(stream: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in stream]


def kinds(events: list[graph.StreamEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.node_id) for e in events]


def review_graph(calls: Counter[str]) -> graph.CompiledGraph:
    """draft -> review (asks twice) -> publish."""

    async def draft(state: dict[str, Any]) -> dict[str, Any]:
        calls["draft"] += 1
        return {"text": "v1"}

    def review(state: dict[str, Any]) -> dict[str, Any]:  # sync: runs in a worker thread
        calls["review"] += 1
        approved = graph.interrupt({"question": "publish?", "text": state["text"]})
        channel = graph.interrupt("which channel?")
        return {"approved": approved, "channel": channel}

    async def publish(state: dict[str, Any]) -> dict[str, Any]:
        calls["publish"] += 1
        return {"published": state["approved"] == "yes"}

    return (
        graph.StateGraph("review").add_node("draft", draft).add_node("review", review)
        .add_node("publish", publish).add_edge(graph.START, "draft")
        .add_edge("draft", "review").add_edge("review", "publish").add_edge("publish", graph.END)
        .compile()
    )


async def test_a_node_asks_twice_and_gets_each_answer_back(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(review_graph(calls), store)
    events = runner.stream()
    seen, first = await asyncio.gather(collect(events), runner.run("s", {}))

    assert first.status == "paused"
    assert first.node_id == "review"
    assert first.next == ("review",)
    [question] = first.interrupts
    assert question.value == {"question": "publish?", "text": "v1"}
    assert (question.node_id, question.task, question.index) == ("review", "review", 0)
    assert len(question.id) == 32
    assert kinds(seen) == [("checkpoint", ""), ("node_start", "draft"), ("node_end", "draft"),
                           ("edge_transition", "draft"), ("checkpoint", "draft"),
                           ("node_start", "review"), ("checkpoint", ""), ("interrupt", "review")]
    assert seen[-1].data == (question,)
    latest = await store.latest("s")
    assert latest is not None
    assert latest.status == "paused"
    assert [dict(r) for r in latest.interrupts] == [question.record()]
    snapshot = await graph.Runner(review_graph(calls), store).get_state("s")
    assert snapshot is not None
    assert snapshot.interrupts == (question,)
    assert snapshot.next == ("review",)
    assert snapshot.status == "paused"

    events = runner.stream()
    seen, second = await asyncio.gather(collect(events), runner.resume("s", resume="yes"))
    assert second.status == "paused"
    [again] = second.interrupts
    assert (again.value, again.index) == ("which channel?", 1)
    assert kinds(seen) == [("checkpoint", ""), ("node_start", "review"), ("checkpoint", ""),
                           ("interrupt", "review")]

    done = await runner.resume("s", graph.Command(resume="email"))
    assert done.status == "completed"
    assert done.interrupts == ()
    assert dict(done.state) == {"text": "v1", "approved": "yes", "channel": "email",
                                "published": True}
    # The node ran again from its start each time; the others once.
    assert calls == Counter({"draft": 1, "review": 3, "publish": 1})
    latest = await store.latest("s")
    assert latest is not None
    assert latest.interrupts == ()
    assert latest.answers == {}


def parallel_graph(calls: Counter[str]) -> graph.CompiledGraph:
    def asker(name: str) -> Any:
        async def ask(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {"answers": [f"{name}={graph.interrupt(f'{name}?')}"]}

        return ask

    async def quiet(state: dict[str, Any]) -> dict[str, Any]:
        calls["quiet"] += 1
        return {"answers": ["quiet"]}

    return (
        graph.StateGraph("par", reducers={"answers": graph.append})
        .add_node("start", lambda s: None, inline=True)
        .add_node("a", asker("a")).add_node("b", asker("b")).add_node("quiet", quiet)
        .add_node("join", lambda s: {"joined": True}, inline=True)
        .set_entry_point("start").add_edge("start", ["a", "b", "quiet"])
        .add_edge(["a", "b", "quiet"], "join").set_finish_point("join").compile()
    )


async def test_parallel_interrupts_are_all_reported_and_answered_by_id(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(parallel_graph(calls), store)
    paused = await runner.run("p", {"answers": []})
    assert paused.status == "paused"
    by_node = {i.node_id: i for i in paused.interrupts}
    assert sorted(by_node) == ["a", "b"]
    assert by_node["a"].value == "a?"

    with pytest.raises(InterruptNotFound) as ambiguous:
        await runner.resume("p", resume="yes")
    assert sorted(ambiguous.value.pending_ids) == sorted(i.id for i in paused.interrupts)

    half = await runner.resume("p", resume={by_node["b"].id: "B"})
    assert half.status == "paused"
    assert [(i.node_id, i.id) for i in half.interrupts] == [("a", by_node["a"].id)]

    done = await runner.resume("p", resume={by_node["a"].id: "A"})
    assert done.status == "completed"
    # Merged in the order the branches were scheduled, not the order they were answered.
    assert done.state["answers"] == ["a=A", "b=B", "quiet"]
    assert calls == Counter({"a": 3, "b": 2, "quiet": 1})


async def test_a_wrong_interrupt_id_is_a_typed_error_and_changes_nothing(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(review_graph(calls), store)
    paused = await runner.run("w", {})
    before = await store.history("w")
    wrong = "0" * 32
    with pytest.raises(InterruptNotFound) as caught:
        await runner.resume("w", resume={wrong: "yes"})
    assert caught.value.interrupt_ids == [wrong]
    assert caught.value.pending_ids == [paused.interrupts[0].id]
    assert [c.id for c in await store.history("w")] == [c.id for c in before]
    assert calls["review"] == 1
    resumed = await runner.resume("w", resume={paused.interrupts[0].id: "yes"})
    assert resumed.interrupts[0].value == "which channel?"


async def test_resume_without_an_answer_asks_again_with_the_same_id(
    store: CheckpointStore,
) -> None:
    runner = graph.Runner(review_graph(Counter()), store)
    paused = await runner.run("again", {})
    again = await runner.resume("again")
    assert again.interrupts == paused.interrupts


async def test_an_interrupt_inside_a_subgraph_pauses_the_whole_run(
    store: CheckpointStore,
) -> None:
    async def confirm(state: dict[str, Any]) -> dict[str, Any]:
        return {"confirmed": graph.interrupt({"amount": state["amount"]})}

    inner = (
        graph.StateGraph("inner").add_node("confirm", confirm)
        .add_node("charge", lambda s: {"charged": s["confirmed"]}, inline=True)
        .set_entry_point("confirm").add_edge("confirm", "charge").set_finish_point("charge")
        .compile()
    )
    outer = (
        graph.StateGraph("outer").add_subgraph("pay", inner)
        .add_node("receipt", lambda s: {"receipt": s["charged"]}, inline=True)
        .set_entry_point("pay").add_edge("pay", "receipt").set_finish_point("receipt").compile()
    )
    runner = graph.Runner(outer, store)
    events = runner.stream()
    seen, paused = await asyncio.gather(collect(events), runner.run("sub", {"amount": 5}))
    assert paused.status == "paused"
    assert paused.path == ("pay",)
    assert paused.interrupts[0].value == {"amount": 5}
    assert paused.interrupts[0].path == ("pay",)
    assert seen[-1].type == "interrupt"
    assert seen[-1].path == ("pay",)
    done = await runner.resume("sub", resume=True)
    assert done.status == "completed"
    assert dict(done.state) == {"amount": 5, "confirmed": True, "charged": True,
                                "receipt": True}


def subgraph_beside_graph(calls: Counter[str]) -> graph.CompiledGraph:
    """A subgraph (prep, then x and y asking in parallel) beside an asking and a quiet node."""

    def asker(name: str) -> Any:
        async def ask(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {"answers": [f"{name}={graph.interrupt(f'{name}?')}"]}

        return ask

    def prep(state: dict[str, Any]) -> dict[str, Any]:
        calls["prep"] += 1
        return {"answers": ["prep"]}

    inner = (
        graph.StateGraph("inner", reducers={"answers": graph.append})
        .add_node("prep", prep, inline=True).add_node("x", asker("x")).add_node("y", asker("y"))
        .set_entry_point("prep").add_edge("prep", ["x", "y"]).set_finish_point("x")
        .set_finish_point("y").compile()
    )
    return (
        graph.StateGraph("outer", reducers={"answers": graph.append})
        .add_subgraph("sub", inner).add_node("a", asker("a"))
        .add_node("quiet", lambda s: {"answers": ["quiet"]}, inline=True)
        .add_edge(graph.START, ["sub", "a", "quiet"]).add_edge(["sub", "a", "quiet"], graph.END)
        .compile()
    )


async def test_a_subgraph_beside_other_nodes_reports_its_interrupts_with_theirs(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(subgraph_beside_graph(calls), store)
    events = runner.stream()
    seen, paused = await asyncio.gather(collect(events), runner.run("sb", {"answers": []}))
    assert paused.status == "paused"
    by_task = {i.task: i for i in paused.interrupts}
    assert sorted(by_task) == ["a", "sub/x", "sub/y"]
    assert [(by_task[t].node_id, by_task[t].path, by_task[t].value)
            for t in ("a", "sub/x", "sub/y")] == [("a", (), "a?"), ("x", ("sub",), "x?"),
                                                  ("y", ("sub",), "y?")]
    assert seen[-1].type == "interrupt"
    assert {i.id for i in seen[-1].data} == {i.id for i in paused.interrupts}

    half = await runner.resume("sb", resume={by_task["sub/x"].id: "X", by_task["a"].id: "A"})
    assert [(i.task, i.id) for i in half.interrupts] == [("sub/y", by_task["sub/y"].id)]
    done = await runner.resume("sb", resume={by_task["sub/y"].id: "Y"})
    assert done.status == "completed"
    # The subgraph ran again from its entry each time, its answers replayed; "a" was kept
    # from the first resume, and "quiet" finished before the first pause.
    assert done.state["answers"] == ["prep", "x=X", "y=Y", "a=A", "quiet"]
    assert calls == Counter({"prep": 3, "x": 3, "y": 3, "a": 2})


async def test_interrupt_outside_a_run_is_an_error() -> None:
    with pytest.raises(GraphError, match="outside a node"):
        graph.interrupt("hello?")


async def test_without_a_store_a_run_pauses_but_cannot_resume() -> None:
    runner = graph.Runner(review_graph(Counter()))
    paused = await runner.run("n", {})
    assert paused.status == "paused"
    assert paused.interrupts[0].index == 0
    with pytest.raises(ConfigurationError):
        await runner.resume("n", resume="yes")


async def test_a_resume_answer_for_a_session_not_waiting_is_refused(
    store: CheckpointStore,
) -> None:
    g = (graph.StateGraph("plain").add_node("a", lambda s: {"x": 1}, inline=True)
         .set_entry_point("a").set_finish_point("a").compile())
    runner = graph.Runner(g, store)
    await runner.run("done", {})
    with pytest.raises(InterruptNotFound, match="not waiting"):
        await runner.resume("done", resume="yes")


async def test_a_node_that_pauses_after_it_ran_is_not_run_again_on_resume(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()

    async def route(state: dict[str, Any]) -> dict[str, Any]:
        calls["route"] += 1
        return {"seen": ["route"]}

    async def work(state: dict[str, Any]) -> dict[str, Any]:
        calls["work"] += 1
        return {"seen": ["work"]}

    compiled = (
        graph.StateGraph("after", reducers={"seen": graph.append})
        .add_node("route", route).add_node("work", work).add_node("end", work)
        .set_entry_point("route").add_conditional_edge("route", lambda s: "work")
        .add_edge("work", "end").set_finish_point("end").compile()
    )
    specs = {n: dataclasses.replace(s, pause_after=n == "route")
             for n, s in compiled.nodes.items()}
    pausing = dataclasses.replace(compiled, nodes=specs, has_interrupts=True)
    runner = graph.Runner(pausing, store)
    paused = await runner.run("s1", {"seen": []})
    assert (paused.status, paused.node_id, paused.state["seen"]) == ("paused", "route", ["route"])
    state = await runner.get_state("s1")
    assert state is not None
    assert (state.status, state.node_id) == ("paused", "route")
    assert (await store.latest("s1")).next == ("work",)  # type: ignore[union-attr]
    done = await runner.resume("s1")
    assert done.status == "completed"
    assert done.state["seen"] == ["route", "work", "work"]
    assert calls == Counter(route=1, work=2)


def gated_beside_graph(calls: Counter[str]) -> graph.CompiledGraph:
    """A subgraph (prep, then the interrupt node gate) beside an asking and a quiet node."""

    def prep(state: dict[str, Any]) -> dict[str, Any]:
        calls["prep"] += 1
        return {"log": ["prep"]}

    async def gate(state: dict[str, Any]) -> dict[str, Any]:
        calls["gate"] += 1
        return {"log": ["gate"]}

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        calls["ask"] += 1
        return {"log": [f"ask={graph.interrupt('ok?')}"]}

    inner = (
        graph.StateGraph("inner", reducers={"log": graph.append})
        .add_node("prep", prep, inline=True).add_interrupt_node("gate", gate)
        .set_entry_point("prep").add_edge("prep", "gate").set_finish_point("gate").compile()
    )
    return (
        graph.StateGraph("outer", reducers={"log": graph.append})
        .add_subgraph("sub", inner).add_node("ask", ask)
        .add_node("quiet", lambda s: {"log": ["quiet"]}, inline=True)
        .add_edge(graph.START, ["sub", "ask", "quiet"])
        .add_edge(["sub", "ask", "quiet"], graph.END).compile()
    )


def trail(events: list[graph.StreamEvent]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(e.type, e.node_id, e.path) for e in events]


async def test_an_interrupt_node_in_a_subgraph_beside_others_pauses_with_their_questions(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(gated_beside_graph(calls), store)
    events = runner.stream()
    seen, paused = await asyncio.gather(collect(events), runner.run("g", {"log": []}))
    assert paused.status == "paused"
    gate, ask = paused.interrupts
    assert (gate.task, gate.node_id, gate.path, gate.value, gate.point) == (
        "sub/gate", "gate", ("sub",), None, "before")
    assert (ask.task, ask.value, ask.point) == ("ask", "ok?", "")
    assert trail(seen) == [
        ("checkpoint", "", ()), ("node_start", "sub", ()), ("node_start", "prep", ("sub",)),
        ("node_end", "prep", ("sub",)), ("edge_transition", "prep", ("sub",)),
        ("node_start", "ask", ()), ("node_start", "quiet", ()),
        ("checkpoint", "quiet", ()),  # quiet finished: recorded while the others run
        ("checkpoint", "", ()), ("interrupt", "gate", ()),
    ]
    assert seen[-1].data == paused.interrupts
    latest = await store.latest("g")
    assert latest is not None
    assert (latest.status, dict(latest.pending)) == ("paused", {"quiet": {"log": ["quiet"]}})
    assert [(r["task"], r.get("point")) for r in latest.interrupts] == [
        ("sub/gate", "before"), ("ask", None)]
    state = await runner.get_state("g")
    assert state is not None
    assert (state.status, state.node_id, state.interrupts) == ("paused", "gate", paused.interrupts)

    # One answer is all a resume needs: it goes to the one question; the gate is passed.
    events = runner.stream()
    seen, done = await asyncio.gather(collect(events), runner.resume("g", resume="yes"))
    assert done.status == "completed"
    assert done.state["log"] == ["prep", "gate", "ask=yes", "quiet"]
    assert trail(seen) == [
        ("checkpoint", "", ()), ("node_start", "sub", ()), ("node_start", "prep", ("sub",)),
        ("node_end", "prep", ("sub",)), ("edge_transition", "prep", ("sub",)),
        ("node_start", "gate", ("sub",)), ("node_end", "gate", ("sub",)),
        ("edge_transition", "gate", ("sub",)), ("node_start", "ask", ()),
        ("checkpoint", "ask", ()), ("node_end", "sub", ()), ("node_end", "ask", ()),
        ("node_end", "quiet", ()), ("edge_transition", "sub", ()),
        ("edge_transition", "ask", ()), ("edge_transition", "quiet", ()),
        ("checkpoint", "quiet", ()), ("completed", "gate", ()),
    ]
    # The subgraph ran again from its entry; quiet finished before the pause.
    assert calls == Counter({"prep": 2, "ask": 2, "gate": 1})


async def test_a_resume_naming_a_static_point_by_id_passes_it_and_a_wrong_id_changes_nothing(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(gated_beside_graph(calls), store)
    gate, ask = (await runner.run("i", {"log": []})).interrupts
    before = [c.id for c in await store.history("i")]
    with pytest.raises(InterruptNotFound):
        await runner.resume("i", resume={gate.id: None, "0" * 32: "yes"})
    assert [c.id for c in await store.history("i")] == before
    # Without an answer for ask, it asks again (same id); the subgraph got past its gate and
    # finished, so it is kept like quiet and does not run again.
    again = await runner.resume("i", resume={gate.id: "go"})
    assert [(i.task, i.id) for i in again.interrupts] == [("ask", ask.id)]
    assert sorted((await store.latest("i")).pending) == ["quiet", "sub"]  # type: ignore[union-attr]
    done = await runner.resume("i", resume={ask.id: "ok"})
    assert done.state["log"] == ["prep", "gate", "ask=ok", "quiet"]
    assert calls == Counter({"prep": 2, "ask": 3, "gate": 1})


async def test_a_node_pausing_after_it_ran_in_a_subgraph_beside_others_pauses_the_run(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()

    async def work(state: dict[str, Any]) -> dict[str, Any]:
        calls["work"] += 1
        return {"log": ["work"]}

    inner = (
        graph.StateGraph("inner", reducers={"log": graph.append})
        .add_node("work", work).add_node("last", lambda s: {"log": ["last"]}, inline=True)
        .set_entry_point("work").add_edge("work", "last").set_finish_point("last").compile()
    )
    specs = {n: dataclasses.replace(s, pause_after=n == "work") for n, s in inner.nodes.items()}
    pausing = dataclasses.replace(inner, nodes=specs, has_interrupts=True)
    outer = (
        graph.StateGraph("outer", reducers={"log": graph.append})
        .add_subgraph("sub", pausing).add_node("quiet", lambda s: {"log": ["quiet"]}, inline=True)
        .add_edge(graph.START, ["sub", "quiet"]).add_edge(["sub", "quiet"], graph.END).compile()
    )
    runner = graph.Runner(outer, store)
    events = runner.stream()
    seen, paused = await asyncio.gather(collect(events), runner.run("a", {"log": []}))
    assert [(i.task, i.node_id, i.path, i.point) for i in paused.interrupts] == [
        ("sub/work", "work", ("sub",), "after")]
    assert trail(seen) == [
        ("checkpoint", "", ()), ("node_start", "sub", ()), ("node_start", "work", ("sub",)),
        ("node_end", "work", ("sub",)), ("edge_transition", "work", ("sub",)),
        ("node_start", "quiet", ()), ("checkpoint", "quiet", ()),
        ("checkpoint", "", ()), ("interrupt", "work", ()),
    ]
    done = await runner.resume("a")  # no answer needed: a resume passes the point
    assert done.status == "completed"
    assert done.state["log"] == ["work", "last", "quiet"]
    assert calls == Counter({"work": 2})

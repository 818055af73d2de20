"""Checkpoints on every store: interrupts, resume, time travel, forks, replay, failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from chronos import graph
from chronos.errors import (
    CheckpointNotFound,
    ConfigurationError,
    NodeError,
    StateNotSerializable,
)
from chronos.store import CheckpointStore

pytestmark = pytest.mark.anyio


def approval_graph(calls: Counter[str]) -> graph.CompiledGraph:
    """draft -> (pause) publish -> done, counting how often each node runs."""

    def node(name: str, update: dict[str, Any]) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {**update, "log": [name]}

        return run

    async def publish(state: dict[str, Any]) -> dict[str, Any]:
        calls["publish"] += 1
        return {"published": state.get("approved", False), "log": ["publish"]}

    return (
        graph.StateGraph("approval", reducers={"log": graph.append})
        .add_node("draft", node("draft", {"text": "v1"}))
        .add_interrupt_node("publish", publish)
        .add_node("done", node("done", {"finished": True}))
        .set_entry_point("draft").add_edge("draft", "publish").add_edge("publish", "done")
        .set_finish_point("done")
        .compile()
    )


async def test_a_checkpoint_after_every_node_records_state_and_next(
    store: CheckpointStore,
) -> None:
    g = (
        graph.StateGraph("g")
        .add_node("a", lambda s: {"n": 1}, inline=True)
        .add_node("b", lambda s: {"n": 2}, inline=True)
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    runner = graph.Runner(g, store)
    stream = runner.stream()
    result = await runner.run("s", {"n": 0})
    checkpoints = await runner.list_checkpoints("s")
    assert [(c.ran, c.next, c.status, c.state["n"]) for c in checkpoints] == [
        ((), ("a",), "running", 0), (("a",), ("b",), "running", 1),
        (("b",), (), "completed", 2),
    ]
    assert [c.step for c in checkpoints] == [0, 1, 2]
    assert [c.parent_id for c in checkpoints] == [None, checkpoints[0].id, checkpoints[1].id]
    assert result.checkpoint_id == checkpoints[-1].id
    announced = [e.data async for e in stream if e.type == "checkpoint"]
    assert announced == [c.id for c in checkpoints]


async def test_interrupt_pauses_then_resume_runs_the_interrupt_node_with_the_update(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(approval_graph(calls), store)
    stream = runner.stream()
    paused = await runner.run("s", {"log": []})
    events = [e async for e in stream]
    assert paused.status == "paused"
    assert paused.node_id == "publish"
    assert paused.next == ("publish",)
    assert events[-1].type == "interrupt"
    assert events[-1].node_id == "publish"
    assert calls == {"draft": 1}
    assert (await store.latest("s")).status == "paused"  # type: ignore[union-attr]

    resumed = await runner.resume("s", {"approved": True})
    assert resumed.status == "completed"
    assert dict(resumed.state) == {"log": ["draft", "publish", "done"], "text": "v1",
                                   "approved": True, "published": True, "finished": True}
    assert calls == {"draft": 1, "publish": 1, "done": 1}
    again = await runner.resume("s")  # completed: nothing runs
    assert again.status == "completed"
    assert calls["done"] == 1


async def test_a_failed_node_is_retried_on_resume_and_finished_ones_are_not(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    flaky = {"fail": True}

    async def first(state: dict[str, Any]) -> dict[str, Any]:
        calls["first"] += 1
        return {"a": 1}

    async def second(state: dict[str, Any]) -> dict[str, Any]:
        calls["second"] += 1
        if flaky["fail"]:
            raise ConnectionError("provider down")
        return {"b": state["a"] + 1}

    g = (
        graph.StateGraph("g").add_node("first", first).add_node("second", second)
        .set_entry_point("first").add_edge("first", "second").set_finish_point("second")
        .compile()
    )
    runner = graph.Runner(g, store)
    with pytest.raises(NodeError):
        await runner.run("s", {})
    failed = await store.latest("s")
    assert failed is not None
    assert failed.status == "failed"
    assert failed.next == ("second",)
    assert "provider down" in failed.error
    flaky["fail"] = False
    result = await runner.resume("s")
    assert dict(result.state) == {"a": 1, "b": 2}
    assert calls == {"first": 1, "second": 2}


async def test_cancelling_keeps_the_last_checkpoint_and_resume_reruns_the_node(
    store: CheckpointStore,
) -> None:
    started = asyncio.Event()
    hang = {"on": True}

    async def slow(state: dict[str, Any]) -> dict[str, Any]:
        if hang["on"]:
            started.set()
            await asyncio.sleep(60)
        return {"slow": "done"}

    g = (
        graph.StateGraph("g").add_node("quick", lambda s: {"quick": 1}, inline=True)
        .add_node("slow", slow).set_entry_point("quick").add_edge("quick", "slow")
        .set_finish_point("slow").compile()
    )
    runner = graph.Runner(g, store)
    task = asyncio.ensure_future(runner.run("s", {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    last = await store.latest("s")
    assert last is not None
    assert last.status == "running"
    assert last.ran == ("quick",)
    assert last.next == ("slow",)
    assert last.state == {"quick": 1}
    hang["on"] = False
    result = await runner.resume("s")
    assert dict(result.state) == {"quick": 1, "slow": "done"}


async def test_time_travel_branches_the_history_and_keeps_it(store: CheckpointStore) -> None:
    g = (
        graph.StateGraph("g", reducers={"log": graph.append})
        .add_node("a", lambda s: {"log": ["a"]}, inline=True)
        .add_node("b", lambda s: {"log": ["b"], "x": s.get("x", 0) + 1}, inline=True)
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    runner = graph.Runner(g, store)
    await runner.run("s", {"log": []})
    first_line = await runner.list_checkpoints("s")
    after_a = first_line[1]
    result = await runner.resume_from_checkpoint(after_a.id, {"x": 10})
    assert dict(result.state) == {"log": ["a", "b"], "x": 11}
    history = await runner.list_checkpoints("s")
    assert [c.id for c in history[:3]] == [c.id for c in first_line]  # untouched
    branch = history[3:]
    assert branch[0].parent_id == after_a.id
    assert branch[0].state["x"] == 10
    assert branch[-1].status == "completed"
    assert len({c.id for c in history}) == len(history)


async def test_fork_starts_a_new_session_and_leaves_the_original_alone(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(approval_graph(calls), store)
    await runner.run("s", {"log": []})
    original = await runner.list_checkpoints("s")
    fork = await runner.fork_from(original[-1].id, {"approved": True}, session_id="s-fork")
    assert fork.session_id == "s-fork"
    assert fork.status == "completed"
    assert fork.state["published"] is True
    assert [c.id for c in await runner.list_checkpoints("s")] == [c.id for c in original]
    forked = await runner.list_checkpoints("s-fork")
    assert forked[0].parent_id == original[-1].id
    assert not {c.id for c in forked} & {c.id for c in original}
    generated = await runner.fork_from(original[0].id)
    assert generated.session_id.startswith("s.fork-")


async def test_replay_streams_the_recorded_history_then_continues(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(approval_graph(calls), store)
    await runner.run("s", {"log": []})
    recorded = await runner.list_checkpoints("s")
    stream = runner.stream()
    result = await runner.replay_from(recorded[-1].id)
    events = [e async for e in stream]
    replayed = [e for e in events if e.name == "replay"]
    assert [e.data for e in replayed] == [c.id for c in recorded]
    assert replayed[-1].state == recorded[-1].state
    assert result.status == "completed"
    assert calls["publish"] == 1


@pytest.mark.parametrize("bad", [object(), (1, 2), float("nan"), float("inf"),
                                 datetime(2024, 5, 1, tzinfo=UTC)])
async def test_unserialisable_state_fails_naming_the_key_and_keeps_the_last_checkpoint(
    store: CheckpointStore, bad: object,
) -> None:
    # Not only values JSON cannot hold: those it would hand back changed, too.
    g = (
        graph.StateGraph("g").add_node("ok", lambda s: {"n": 1}, inline=True)
        .add_node("bad", lambda s: {"conn": bad}, inline=True)
        .set_entry_point("ok").add_edge("ok", "bad").set_finish_point("bad").compile()
    )
    runner = graph.Runner(g, store)
    with pytest.raises(StateNotSerializable) as caught:
        await runner.run("s", {})
    assert caught.value.key == "conn"
    checkpoints = await runner.list_checkpoints("s")
    assert all("conn" not in c.state for c in checkpoints)
    assert checkpoints[-1].status == "failed"
    assert checkpoints[-1].next == ("bad",)
    assert checkpoints[-2].ran == ("ok",)


async def test_resume_without_checkpoints_or_store_is_a_clear_error(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    with pytest.raises(CheckpointNotFound):
        await graph.Runner(approval_graph(calls), store).resume("never-ran")
    with pytest.raises(ConfigurationError):
        await graph.Runner(approval_graph(calls)).resume("s")


async def test_get_state_reports_running_failed_cancelled_and_checkpointed(
    store: CheckpointStore,
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    behaviour = {"mode": "wait"}

    async def work(state: dict[str, Any]) -> dict[str, Any]:
        started.set()
        if behaviour["mode"] == "fail":
            raise RuntimeError("nope")
        await gate.wait()
        return {"done": True}

    g = (
        graph.StateGraph("g").add_node("work", work).set_entry_point("work")
        .set_finish_point("work").compile()
    )
    runner = graph.Runner(g, store)
    assert await runner.get_state("s") is None
    task = asyncio.ensure_future(runner.run("s", {}))
    await started.wait()
    running = await runner.get_state("s")
    assert running is not None
    assert (running.status, running.next) == ("running", ("work",))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancelled = await runner.get_state("s")
    assert cancelled is not None
    assert (cancelled.status, cancelled.node_id) == ("cancelled", "work")
    fresh = graph.Runner(g, store)  # another runner knows only the checkpoint
    crashed = await fresh.get_state("s")
    assert crashed is not None
    assert (crashed.status, crashed.next) == ("running", ("work",))
    behaviour["mode"] = "fail"
    with pytest.raises(NodeError):
        await runner.resume("s")
    failed = await runner.get_state("s")
    assert failed is not None
    assert failed.status == "failed"
    assert (await fresh.get_state("s")).status == "failed"  # type: ignore[union-attr]

    calls: Counter[str] = Counter()
    pausing = graph.Runner(approval_graph(calls), store)
    await pausing.run("p", {"log": []})
    paused = await graph.Runner(approval_graph(calls), store).get_state("p")
    assert paused is not None
    assert (paused.status, paused.node_id) == ("paused", "publish")


async def test_resume_sync_from_plain_code(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(approval_graph(calls), store)
    await runner.run("s", {"log": []})
    result = await asyncio.to_thread(runner.resume_sync, "s", {"approved": True})
    assert result.status == "completed"
    assert result.state["published"] is True


async def test_finished_parallel_branches_are_not_rerun_after_a_failure(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    web_done = asyncio.Event()
    broken = {"docs": True}

    async def web(state: dict[str, Any]) -> dict[str, Any]:
        calls["web"] += 1
        web_done.set()
        return {"log": ["web"]}

    async def docs(state: dict[str, Any]) -> dict[str, Any]:
        calls["docs"] += 1
        await web_done.wait()
        await asyncio.sleep(0.01)  # web's checkpoint is written meanwhile
        if broken["docs"]:
            raise TimeoutError("docs search timed out")
        return {"log": ["docs"]}

    g = (
        graph.StateGraph("research", reducers={"log": graph.append})
        .add_node("docs", docs).add_node("web", web)
        .add_node("write", lambda s: {"log": ["write"]}, inline=True)
        .add_edge(graph.START, ["docs", "web"]).add_edge(["docs", "web"], "write")
        .set_finish_point("write").compile()
    )
    runner = graph.Runner(g, store)
    with pytest.raises(NodeError):
        await runner.run("s", {"log": []})
    failed = await store.latest("s")
    assert failed is not None
    assert failed.status == "failed"
    assert failed.next == ("docs", "web")
    assert failed.pending == {"web": {"log": ["web"]}}
    broken["docs"] = False
    result = await runner.resume("s")
    assert result.state["log"] == ["docs", "web", "write"]  # schedule order, not finish order
    assert calls == {"web": 1, "docs": 2}


def review_graph(calls: Counter[str]) -> graph.CompiledGraph:
    """start -> review (a subgraph: draft -> ask, an interrupt node -> polish) -> publish."""

    def node(name: str, update: Any) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {**update(state), "log": [name]}

        return run

    review = (
        graph.StateGraph("review", reducers={"log": graph.append, "notes": graph.append})
        .add_node("draft", node("draft", lambda s: {"text": "v1"}))
        .add_interrupt_node("ask", node("ask", lambda s: {"ok": s.get("approved", False)}))
        .add_node("polish", node("polish", lambda s: {"text": s["text"] + "!"}))
        .set_entry_point("draft").add_edge("draft", "ask").add_edge("ask", "polish")
        .set_finish_point("polish").compile()
    )
    return (
        graph.StateGraph("outer", reducers={"log": graph.append})
        .add_node("start", node("start", lambda s: {}))
        .add_subgraph("review", review)
        .add_node("publish", node("publish", lambda s: {"published": s["ok"]}))
        .set_entry_point("start").add_edge("start", "review").add_edge("review", "publish")
        .set_finish_point("publish").compile()
    )


async def test_an_interrupt_inside_a_subgraph_pauses_the_run_and_resume_continues_there(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(review_graph(calls), store)
    stream = runner.stream()
    paused = await runner.run("s", {"log": [], "notes": []})
    events = [e async for e in stream]
    assert (paused.status, paused.node_id, paused.path, paused.next) == (
        "paused", "ask", ("review",), ("ask",))
    assert paused.state["text"] == "v1"  # the subgraph's state at the pause
    assert (events[-1].type, events[-1].node_id, events[-1].path) == (
        "interrupt", "ask", ("review",))
    assert calls == {"start": 1, "draft": 1}
    latest = await store.latest("s")
    assert latest is not None
    assert (latest.status, latest.path, latest.ran, latest.next) == (
        "paused", ("review",), ("draft",), ("ask",))
    assert latest.id == paused.checkpoint_id
    fresh = await graph.Runner(review_graph(calls), store).get_state("s")
    assert fresh is not None
    assert (fresh.status, fresh.node_id, fresh.path) == ("paused", "ask", ("review",))

    stream = runner.stream()
    done = await runner.resume("s", {"approved": True, "notes": ["lgtm"]})
    events = [e async for e in stream]
    assert done.status == "completed"
    assert done.path == ()
    assert dict(done.state) == {"log": ["start", "draft", "ask", "polish", "publish"],
                                "notes": ["lgtm"], "approved": True, "text": "v1!",
                                "ok": True, "published": True}
    assert calls == {"start": 1, "draft": 1, "ask": 1, "polish": 1, "publish": 1}
    ends = [(e.path, e.node_id) for e in events if e.type == "node_end"]
    assert ends == [(("review",), "ask"), (("review",), "polish"), ((), "review"),
                    ((), "publish")]
    review_end = next(e for e in events if e.type == "node_end" and e.node_id == "review")
    assert review_end.data["text"] == "v1!"
    history = await runner.list_checkpoints("s")
    assert [(c.path, c.ran, c.next) for c in history[-4:]] == [
        (("review",), (), ("ask",)),  # the resume's own start, the update applied
        (("review",), ("ask",), ("polish",)),
        ((), ("review",), ("publish",)),
        ((), ("publish",), ()),
    ]

    # A fork of the paused checkpoint continues inside the subgraph too, in its own session.
    fork = await runner.fork_from(latest.id, {"approved": False}, session_id="s-no")
    assert (fork.status, fork.state["published"]) == ("completed", False)
    assert calls["ask"] == 2
    assert calls["draft"] == 1


async def test_nested_subgraphs_pause_at_an_entry_interrupt_and_resume_through_every_level(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        calls["ask"] += 1
        return {"answers": [state["answer"]]}

    inner = (
        graph.StateGraph("inner", reducers={"answers": graph.append})
        .add_interrupt_node("ask", ask)
        .set_entry_point("ask").set_finish_point("ask").compile()
    )
    middle = (
        graph.StateGraph("middle").add_subgraph("inner", inner)
        .add_node("after", lambda s: {"after": len(s["answers"])}, inline=True)
        .set_entry_point("inner").add_edge("inner", "after").set_finish_point("after")
        .compile()
    )
    outer = (
        graph.StateGraph("outer").add_subgraph("middle", middle)
        .add_node("end", lambda s: {"end": True}, inline=True)
        .set_entry_point("middle").add_edge("middle", "end").set_finish_point("end").compile()
    )
    runner = graph.Runner(outer, store)
    paused = await runner.run("s", {"answers": ["first"]})
    assert (paused.status, paused.node_id, paused.path) == ("paused", "ask", ("middle", "inner"))
    assert calls == {}
    # The update goes through the reducers of the graph the interrupt node is in: appended.
    done = await runner.resume("s", {"answer": "yes", "answers": ["again"]})
    assert done.status == "completed"
    assert dict(done.state) == {"answers": ["first", "again", "yes"], "answer": "yes",
                                "after": 3, "end": True}
    assert calls == {"ask": 1}


async def test_a_failure_inside_a_subgraph_resumes_there_without_rerunning_finished_nodes(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    broken = {"b": True}

    async def a(state: dict[str, Any]) -> dict[str, Any]:
        calls["a"] += 1
        return {"a": 1}

    async def b(state: dict[str, Any]) -> dict[str, Any]:
        calls["b"] += 1
        if broken["b"]:
            raise ConnectionError("provider down")
        return {"b": state["a"] + 1}

    inner = (
        graph.StateGraph("inner").add_node("a", a).add_node("b", b)
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    outer = (
        graph.StateGraph("outer").add_subgraph("sub", inner)
        .set_entry_point("sub").set_finish_point("sub").compile()
    )
    runner = graph.Runner(outer, store)
    with pytest.raises(NodeError):
        await runner.run("s", {})
    failed = await store.latest("s")
    assert failed is not None
    assert (failed.status, failed.path, failed.next) == ("failed", ("sub",), ("b",))
    broken["b"] = False
    result = await runner.resume("s")
    assert dict(result.state) == {"a": 1, "b": 2}
    assert calls == {"a": 1, "b": 2}

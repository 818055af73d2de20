"""Streaming a run: order, modes, several readers, slow readers, emit(), cancellation, broker."""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos import graph, store, stream
from chronos.graph import emit

pytestmark = pytest.mark.anyio


def two_step_graph() -> graph.CompiledGraph:
    async def extract(state: dict[str, Any]) -> dict[str, Any]:
        emit("progress", {"done": 1})
        emit("token", "He")
        emit("token", "llo")
        return {"doc": "x"}

    def answer(state: dict[str, Any]) -> dict[str, Any]:  # a worker thread
        for i in range(3):
            emit("progress", {"done": 2 + i})
        return {"answer": state["doc"] + "!"}

    return (
        graph.StateGraph("g").add_node("extract", extract).add_node("answer", answer)
        .set_entry_point("extract").add_edge("extract", "answer").set_finish_point("answer")
        .compile()
    )


async def collect(stream: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in stream]


async def test_the_guide_pattern_receives_every_event_in_order() -> None:
    runner = graph.Runner(two_step_graph())
    events = runner.stream()
    seen, result = await asyncio.gather(collect(events), runner.run("s", {"query": "hi"}))
    assert [(e.type, e.node_id) for e in seen] == [
        ("node_start", "extract"), ("custom", "extract"), ("token", "extract"),
        ("token", "extract"), ("node_end", "extract"), ("edge_transition", "extract"),
        ("node_start", "answer"), ("custom", "answer"), ("custom", "answer"),
        ("custom", "answer"), ("node_end", "answer"), ("edge_transition", "answer"),
        ("completed", "answer"),
    ]
    assert [e.seq for e in seen] == list(range(1, 14))
    assert {e.run_id for e in seen} == {result.run_id}
    assert {e.session_id for e in seen} == {"s"}
    assert [e.data["done"] for e in seen if e.type == "custom"] == [1, 2, 3, 4]
    assert all(e.name == "progress" for e in seen if e.type == "custom")
    assert result.seq == 13
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(seen))


async def test_modes_filter_and_every_mode_gets_the_terminal_event() -> None:
    runner = graph.Runner(two_step_graph())
    streams = {m: runner.stream(m) for m in ("values", "updates", "messages", "custom")}
    both = runner.stream(["messages", "custom"])
    results = await asyncio.gather(*(collect(s) for s in [*streams.values(), both]),
                                   runner.run("s", {"query": "hi"}))
    values, updates, messages, custom, mixed = results[:5]
    # LangGraph's "values": the input, then the whole state after each step.
    assert [e.type for e in values] == ["values", "values", "values", "completed"]
    assert [dict(e.state or {}) for e in values[:3]] == [
        {"query": "hi"}, {"query": "hi", "doc": "x"}, {"query": "hi", "doc": "x", "answer": "x!"}]
    assert [e.node_id for e in updates[:2]] == ["extract", "answer"]
    assert [dict(e.data) for e in updates[:2]] == [{"doc": "x"}, {"answer": "x!"}]
    assert [e.data for e in messages] == ["He", "llo", None]
    assert [e.type for e in custom] == ["custom"] * 4 + ["completed"]
    assert [e.type for e in mixed].count("token") == 2
    assert [e.type for e in mixed].count("custom") == 4


async def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stream mode"):
        graph.Runner(two_step_graph()).stream("everything")  # type: ignore[arg-type]


async def test_state_snapshots_are_read_only_and_not_live() -> None:
    def grow(state: dict[str, Any]) -> dict[str, Any]:
        state["items"] = [*state["items"], len(state["items"])]
        return state

    g = (
        graph.StateGraph("g").add_node("a", grow).add_node("b", grow)
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    runner = graph.Runner(g)
    stream = runner.stream("updates")
    seen, _ = await asyncio.gather(collect(stream), runner.run("s", {"items": []}))
    assert seen[0].state == {"items": [0]}
    assert seen[1].state == {"items": [0, 1]}
    with pytest.raises(TypeError):
        seen[0].state["items"] = []  # type: ignore[index]
    # The event itself: tests/graph/test_stream_event.py.


async def test_a_reader_that_stops_reading_gets_a_gap_and_never_blocks_the_run() -> None:
    async def chatty(state: dict[str, Any]) -> None:
        for i in range(1000):
            emit("token", str(i))

    g = graph.StateGraph("g").add_node("chat", chatty).set_entry_point("chat")
    runner = graph.Runner(g.set_finish_point("chat").compile())
    slow = runner.stream("messages", buffer=100)
    fast = runner.stream("messages")
    fast_seen, result = await asyncio.gather(collect(fast), runner.run("s", {}))
    assert result.status == "completed"  # finished although `slow` read nothing
    assert len(fast_seen) == 1001
    slow_seen = await collect(slow)
    assert [e.data for e in slow_seen[:100]] == [str(i) for i in range(100)]
    gap = slow_seen[100]
    assert gap.type == "gap"
    first, last = slow_seen[99].seq + 1, slow_seen[99].seq + 900
    assert gap.seq == first
    assert gap.data == {
        "reason": "overflow", "missed": 900, "first_id": str(first), "last_id": str(last)
    }
    assert slow_seen[-1].type == "completed"
    assert len(slow_seen) == 102


async def test_a_local_readers_gap_says_what_a_broker_subscribers_gap_says() -> None:
    """One gap payload: a bounded local reader is told as an SSE subscriber of a broker is."""

    async def chatty(state: dict[str, Any]) -> None:
        for i in range(10):
            emit("progress", i)

    broker = stream.Broker()
    async with broker.subscribe("slow", max_pending=4) as subscription:
        g = graph.StateGraph("g").add_node("chat", chatty).set_entry_point("chat")
        runner = graph.Runner(g.set_finish_point("chat").compile(), broker=broker)
        local = runner.stream("custom", buffer=4)
        await runner.run("s", {})
        remote = await subscription.receive_batch(100, timeout=1)
        local_seen = await collect(local)

    remote_gap = next(e for e in remote if e.type == stream.GAP)
    local_gap = next(e for e in local_seen if e.type == stream.GAP)
    assert remote_gap.data["reason"] == local_gap.data["reason"] == "overflow"
    assert {k: type(v) for k, v in local_gap.data.items()} == {
        k: type(v) for k, v in remote_gap.data.items()
    }
    # The local reader kept the first four events and missed the other six, named by `seq`.
    kept = [e for e in local_seen if e.type == "custom"]
    assert [e.data for e in kept] == [0, 1, 2, 3]
    first, last = kept[-1].seq + 1, kept[-1].seq + 6
    assert local_gap.data == {
        "reason": "overflow", "missed": 6, "first_id": str(first), "last_id": str(last)
    }
    assert local_seen[-1].type == "completed"


async def test_closing_a_stream_early_unsubscribes_it() -> None:
    runner = graph.Runner(two_step_graph())
    async with runner.stream() as events:
        task = asyncio.ensure_future(runner.run("s", {"query": "hi"}))
        first = await events.__anext__()
        assert first.type == "node_start"
    assert await collect(events) == []
    assert (await task).status == "completed"
    await events.aclose()  # idempotent


async def test_a_stream_created_during_a_run_joins_it() -> None:
    gate = asyncio.Event()

    async def wait(state: dict[str, Any]) -> None:
        await gate.wait()

    g = graph.StateGraph("g").add_node("w", wait).set_entry_point("w").set_finish_point("w")
    runner = graph.Runner(g.compile())
    task = asyncio.ensure_future(runner.run("s", {}))
    await asyncio.sleep(0.01)
    late = runner.stream(session_id="s")
    gate.set()
    seen = await collect(late)
    await task
    assert [e.type for e in seen] == ["node_end", "edge_transition", "completed"]


async def test_cancelling_the_run_cancels_the_node_and_ends_every_stream() -> None:
    node_cancelled = asyncio.Event()
    started = asyncio.Event()

    async def hang(state: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            node_cancelled.set()
            raise

    g = graph.StateGraph("g").add_node("hang", hang).set_entry_point("hang")
    runner = graph.Runner(g.set_finish_point("hang").compile())
    a, b = runner.stream(), runner.stream("custom")
    task = asyncio.ensure_future(runner.run("s", {}))
    await started.wait()
    task.cancel()
    seen_a, seen_b = await asyncio.gather(collect(a), collect(b))
    assert node_cancelled.is_set()
    assert seen_a[-1].type == "cancelled"
    assert seen_a[-1].node_id == "hang"
    assert [e.type for e in seen_b] == ["cancelled"]
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_every_event_reaches_broker_subscribers_of_the_session_topic() -> None:
    broker = stream.Broker()
    runner = graph.Runner(two_step_graph(), broker=broker)
    events = runner.stream()
    async with broker.subscribe("ui", topics=["session-9"]) as subscription:
        seen, _ = await asyncio.gather(collect(events), runner.run("session-9", {"query": "q"}))
        delivered = [await subscription.__anext__() for _ in seen]
    assert [e.topic for e in delivered] == ["session-9"] * len(seen)
    assert [e.type for e in delivered] == [e.type for e in seen]
    assert [e.data["seq"] for e in delivered] == [e.seq for e in seen]
    assert delivered[-1].data["state"] == {"query": "q", "doc": "x", "answer": "x!"}
    # The SSE wire form carries the type inside the JSON, as the guide's onmessage reads it.
    assert orjson.loads(delivered[0].json())["type"] == "node_start"
    await broker.aclose()


async def test_broker_events_narrow_what_a_run_publishes_not_what_readers_get() -> None:
    broker = stream.Broker()
    runner = graph.Runner(two_step_graph(), broker=broker)
    events = runner.stream()
    async with broker.subscribe("ui", topics=["session-8"]) as subscription:
        seen, _ = await asyncio.gather(
            collect(events),
            runner.run("session-8", {"query": "q"}, broker_events={"node_end", "completed"}))
        delivered = await subscription.receive_batch(timeout=0.2)
    # The local reader still gets the tokens and custom events the broker went without, and
    # the numbering is the same for both.
    assert [e.type for e in seen].count("token") == 2
    assert [e.type for e in seen].count("custom") == 4
    assert [e.type for e in delivered] == ["node_end", "node_end", "completed"]
    assert [e.data["seq"] for e in delivered] == [
        e.seq for e in seen if e.type in ("node_end", "completed")]
    await broker.aclose()


async def test_a_run_without_readers_builds_no_event_the_broker_does_not_take() -> None:
    broker = stream.Broker()
    runner = graph.Runner(two_step_graph(), broker=broker)
    async with broker.subscribe("ui", topics=["session-7"]) as subscription:
        done = await runner.run("session-7", {"query": "q"}, broker_events={"token"})
        delivered = await subscription.receive_batch(timeout=0.2)
    assert [(e.type, e.data["data"]) for e in delivered] == [("token", "He"), ("token", "llo")]
    assert done.seq > delivered[-1].data["seq"]  # the events it skipped were numbered
    await broker.aclose()


async def test_state_json_cannot_carry_still_reaches_the_broker_by_repr() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    def make(state: dict[str, Any]) -> dict[str, Any]:
        return {"thing": Opaque()}

    compiled = (
        graph.StateGraph("g").add_node("make", make).set_entry_point("make")
        .set_finish_point("make").compile()
    )
    broker = stream.Broker()
    runner = graph.Runner(compiled, broker=broker)
    async with broker.subscribe("ui", topics=["s"]) as subscription:
        await runner.run("s", {})
        while (event := await subscription.__anext__()).type != "completed":
            pass
    assert event.data["state"]["thing"] == "<opaque>"
    await broker.aclose()


async def test_several_readers_see_the_same_events_and_a_closed_one_none() -> None:
    runner = graph.Runner(two_step_graph())
    first, second, dropped = runner.stream(), runner.stream(), runner.stream()
    await dropped.aclose()
    assert dropped.closed
    a, b, _ = await asyncio.gather(collect(first), collect(second), runner.run("s", {"query": ""}))
    assert a == b
    assert len(a) == 13
    assert await collect(dropped) == []
    assert first.closed


async def test_a_sync_node_in_a_thread_streams_while_it_runs() -> None:
    first_seen = threading.Event()

    def worker(state: dict[str, Any]) -> dict[str, Any]:
        emit("progress", "started")
        # Only returns once the reader got the first event: events are not held until return.
        assert first_seen.wait(10)
        for i in range(5000):
            emit("token", i)
        return {"done": True}

    g = graph.StateGraph("g").add_node("w", worker).set_entry_point("w").set_finish_point("w")
    runner = graph.Runner(g.compile())
    events = runner.stream(["custom", "messages"])

    async def consume() -> list[graph.StreamEvent]:
        seen = []
        async for evt in events:
            seen.append(evt)
            first_seen.set()
        return seen

    seen, result = await asyncio.gather(consume(), runner.run("s", {}))
    assert result.status == "completed"
    assert [e.data for e in seen[1:-1]] == list(range(5000))
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)


async def test_a_reader_on_another_thread_and_loop_gets_everything() -> None:
    async def chatty(state: dict[str, Any]) -> None:
        for i in range(3000):
            emit("token", i)
            if i % 50 == 0:
                await asyncio.sleep(0)

    g = graph.StateGraph("g").add_node("chat", chatty).set_entry_point("chat")
    runner = graph.Runner(g.set_finish_point("chat").compile())
    events = runner.stream("messages")

    def read_elsewhere() -> list[Any]:
        return asyncio.run(collect(events))  # its own loop, in a worker thread

    seen, _ = await asyncio.gather(asyncio.to_thread(read_elsewhere), runner.run("s", {}))
    assert [e.data for e in seen[:-1]] == list(range(3000))
    assert seen[-1].type == "completed"


async def test_checkpoints_and_tasks_modes(tmp_path: Path) -> None:
    async with store.SQLiteStore(tmp_path / "modes.db") as checkpoints:
        runner = graph.Runner(two_step_graph(), checkpoints)
        written, tasks = runner.stream("checkpoints"), runner.stream("tasks")
        got_written, got_tasks, _ = await asyncio.gather(collect(written), collect(tasks),
                                                         runner.run("m", {"query": "hi"}))
        ids = [c.id for c in await checkpoints.history("m")]
    assert [e.type for e in got_written] == ["checkpoint"] * 3 + ["completed"]
    assert [e.data for e in got_written[:3]] == ids
    assert [(e.type, e.node_id) for e in got_tasks] == [
        ("node_start", "extract"), ("node_end", "extract"), ("node_start", "answer"),
        ("node_end", "answer"), ("completed", "answer")]

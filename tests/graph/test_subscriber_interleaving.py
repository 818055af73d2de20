"""Property: how subscribers read never changes a run's events or its checkpoint history.

Hypothesis picks the readers: how many, when each subscribes (before the run, or while it
runs), how each reads (yielding to the loop some number of times between events, sleeping
for real, or reading in bursts), and when a reader closes its stream early. The graph has a
sequential step with a node in a worker thread, a parallel step of three async branches that
yield to the loop at different rates, a join, and a conditional loop. Every reader that
subscribed before the run must see exactly the events of a reference run, in order; one that
joined later sees a contiguous suffix of them; and the checkpoints written are identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronos import graph
from chronos.graph import StreamEvent
from chronos.store.memory import MemoryStore


def _graph() -> graph.CompiledGraph:
    async def plan(state: dict[str, Any]) -> dict[str, Any]:
        graph.emit("token", "plan")
        await asyncio.sleep(0)
        graph.emit("progress", {"round": state.get("round", 0)})
        return {"log": ["plan"], "round": state.get("round", 0) + 1}

    def branch(name: str, yields: int) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            for i in range(yields):
                graph.emit("token", f"{name}{i}")
                await asyncio.sleep(0)
            return {"log": [name]}
        return run

    def summarize(state: dict[str, Any]) -> dict[str, Any]:  # runs in a worker thread
        for i in range(3):
            graph.emit("progress", {"summary": i})
        return {"summary": ",".join(state["log"])}

    return (
        graph.StateGraph("interleave", reducers={"log": graph.append})
        .add_node("plan", plan)
        .add_node("a", branch("a", 1)).add_node("b", branch("b", 4)).add_node("c", branch("c", 2))
        .add_node("summarize", summarize)
        .set_entry_point("plan")
        .add_edge("plan", ["a", "b", "c"])
        .add_edge(["a", "b", "c"], "summarize")
        .add_conditional_edge("summarize", lambda s: "plan" if s["round"] < 2 else graph.END)
        .compile()
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # MappingProxyType snapshots included
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _event(e: StreamEvent) -> tuple[Any, ...]:
    # Checkpoint ids, run ids and times differ from run to run; everything else may not.
    data = "<checkpoint id>" if e.type == "checkpoint" else _plain(e.data)
    return (e.seq, e.type, e.node_id, e.name, e.path, e.error, data, _plain(e.state))


async def _history(store: MemoryStore, session: str) -> list[tuple[Any, ...]]:
    return [(c.step, c.status, c.ran, c.next, _plain(c.state), _plain(c.pending), c.error)
            for c in await store.history(session)]


@dataclass(frozen=True)
class Reader:
    """How one subscriber behaves."""

    joins_after: int | None  # None: subscribes before the run; else after this many yields
    pauses: tuple[int, ...]  # per event, cycled: >0 yields, 0 none, <0 a real sleep (ms)
    stops_after: int | None  # closes its stream after this many events


readers = st.builds(
    Reader,
    joins_after=st.none() | st.integers(0, 30),
    pauses=st.lists(st.integers(-2, 6), min_size=1, max_size=8).map(tuple),
    stops_after=st.none() | st.none() | st.integers(1, 40),
)


async def _read(events: graph.EventStream, reader: Reader) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    async for event in events:
        seen.append(_event(event))
        if reader.stops_after is not None and len(seen) >= reader.stops_after:
            await events.aclose()
            break
        pause = reader.pauses[len(seen) % len(reader.pauses)]
        if pause < 0:
            await asyncio.sleep(-pause / 1000)
        for _ in range(pause):
            await asyncio.sleep(0)
    return seen


async def _run(readers: list[Reader]) -> tuple[list[list[tuple[Any, ...]]], list[Any]]:
    store = MemoryStore()
    runner = graph.Runner(_graph(), store)
    early = {i: runner.stream() for i, r in enumerate(readers) if r.joins_after is None}
    tasks: dict[int, asyncio.Task[list[tuple[Any, ...]]]] = {
        i: asyncio.ensure_future(_read(s, readers[i])) for i, s in early.items()}
    run = asyncio.ensure_future(runner.run("s", {"log": []}))
    for step in range(max((r.joins_after or 0) for r in readers) + 1):
        for i, r in enumerate(readers):
            if r.joins_after == step and not run.done():
                tasks[i] = asyncio.ensure_future(_read(runner.stream(), r))
        await asyncio.sleep(0)
    result = await run
    assert result.status == "completed"
    seen = [await asyncio.wait_for(tasks[i], 10) if i in tasks else [] for i in range(len(readers))]
    return seen, await _history(store, "s")


@pytest.fixture(scope="module")
def reference() -> tuple[list[tuple[Any, ...]], list[Any]]:
    """A run read by one reader that never pauses."""
    seen, history = asyncio.run(_run([Reader(None, (0,), None)]))
    return seen[0], history


def test_the_reference_run_is_what_the_graph_does(
    reference: tuple[list[tuple[Any, ...]], list[Any]]
) -> None:
    events, history = reference
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    assert events[-1][1] == "completed"
    assert events[-1][7]["summary"] == "plan,a,b,c,plan,a,b,c"
    # Two rounds: plan, a checkpoint per batch of branches finishing together and one per
    # step, summarize. Each branch is recorded once per round.
    assert [c[1] for c in history][-1] == "completed"
    branch_records = [n for c in history if c[3] == ("a", "b", "c") and c[2] != ("plan",)
                      for n in c[2]]
    assert sorted(branch_records) == ["a", "a", "b", "b", "c", "c"]


def _contains(events: list[tuple[Any, ...]], part: list[tuple[Any, ...]]) -> bool:
    return any(events[i : i + len(part)] == part for i in range(len(events) - len(part) + 1))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(readers, min_size=1, max_size=6))
def test_any_interleaving_of_subscribers_sees_the_same_run(
    reference: tuple[list[tuple[Any, ...]], list[Any]], schedule: list[Reader]
) -> None:
    events, history = reference
    seen, got_history = asyncio.run(_run(schedule))
    assert got_history == history
    for reader, got in zip(schedule, seen, strict=True):
        if reader.joins_after is None:
            assert got == events[: reader.stops_after]
            continue
        # Joined mid-run: a contiguous run of the reference's events, numbered as the
        # reference numbers them, up to the end unless it stopped.
        assert _contains(events, got)
        if reader.stops_after is None and got:
            assert got == events[len(events) - len(got):]


def test_a_late_subscriber_sees_the_same_sequence_numbers(
    reference: tuple[list[tuple[Any, ...]], list[Any]]
) -> None:
    events, _ = reference
    [got], _ = asyncio.run(_run([Reader(joins_after=1, pauses=(0,), stops_after=None)]))
    assert got == events[len(events) - len(got):]

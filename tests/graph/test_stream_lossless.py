"""`runner.stream()` loses nothing by default, whatever a node does and however slow a reader.

Each node emits a million events in a loop that never yields; every reader, a slow one too,
must get all of them, in order, once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from chronos import graph
from chronos.graph import _events, emit
from chronos.graph._emit import current_sink

pytestmark = pytest.mark.anyio

MILLION = 1_000_000


async def emit_a_million_async(state: dict[str, Any]) -> dict[str, Any]:
    for i in range(MILLION):
        emit("tick", i)
    return {"done": True}


def emit_a_million_sync(state: dict[str, Any]) -> dict[str, Any]:
    for i in range(MILLION):
        emit("tick", i)
    return {"done": True}


async def emit_a_million_from_a_thread_it_starts(state: dict[str, Any]) -> dict[str, Any]:
    # `asyncio.to_thread` copies the node's context, and so the node's emitter, onto a worker
    # thread: the hub must see that thread and hand its events to the loop.
    return await asyncio.to_thread(emit_a_million_sync, state)


def one_node(function: Callable[..., Any], *, inline: bool = False) -> graph.CompiledGraph:
    return (
        graph.StateGraph("g").add_node("n", function, inline=inline)
        .set_entry_point("n").set_finish_point("n").compile()
    )


def in_a_subgraph(function: Callable[..., Any]) -> graph.CompiledGraph:
    inner = one_node(function)
    return (
        graph.StateGraph("outer").add_subgraph("sub", inner)
        .set_entry_point("sub").set_finish_point("sub").compile()
    )


async def read_fast(events: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in events if e.type == "custom"]


async def read_slowly(events: graph.EventStream) -> list[graph.StreamEvent]:
    """Hands the loop back every few events, so the run and the other reader get ahead."""
    seen = []
    async for evt in events:
        if evt.type == "custom":
            seen.append(evt)
        if len(seen) % 8 == 0:
            await asyncio.sleep(0)
    return seen


def assert_all_in_order_once(seen: list[graph.StreamEvent]) -> None:
    assert len(seen) == MILLION
    assert [e.data for e in seen] == list(range(MILLION))
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs))


GRAPHS = {
    "async node": lambda: one_node(emit_a_million_async),
    "sync node in a worker thread": lambda: one_node(emit_a_million_sync),
    "sync node inline": lambda: one_node(emit_a_million_sync, inline=True),
    "async node's own worker thread": lambda: one_node(emit_a_million_from_a_thread_it_starts),
    "async node in a subgraph": lambda: in_a_subgraph(emit_a_million_async),
    "sync node in a subgraph": lambda: in_a_subgraph(emit_a_million_sync),
}


@pytest.mark.parametrize("make_graph", GRAPHS.values(), ids=GRAPHS.keys())
async def test_a_million_emits_reach_a_fast_and_a_slow_reader(
    make_graph: Callable[[], graph.CompiledGraph],
) -> None:
    runner = graph.Runner(make_graph())
    fast, slow = runner.stream(), runner.stream("custom")
    fast_seen, slow_seen, result = await asyncio.gather(
        read_fast(fast), read_slowly(slow), runner.run("s", {})
    )
    assert result.status == "completed"
    assert_all_in_order_once(fast_seen)
    assert_all_in_order_once(slow_seen)
    assert [e.seq for e in fast_seen] == [e.seq for e in slow_seen]


async def test_a_reader_on_another_thread_gets_a_million_from_a_sync_node() -> None:
    runner = graph.Runner(one_node(emit_a_million_sync))
    events = runner.stream("custom")

    def read_elsewhere() -> list[graph.StreamEvent]:
        return asyncio.run(read_fast(events))  # its own loop, in a worker thread

    seen, _ = await asyncio.gather(asyncio.to_thread(read_elsewhere), runner.run("s", {}))
    assert_all_in_order_once(seen)


async def test_the_sinks_fast_path_loses_nothing_either() -> None:
    async def through_the_sink(state: dict[str, Any]) -> None:
        sink = current_sink()  # what graph.stream_chat calls per token
        for i in range(MILLION):
            sink("token", i)

    runner = graph.Runner(one_node(through_the_sink))
    events = runner.stream("messages")
    seen, _ = await asyncio.gather(read_fast_tokens(events), runner.run("s", {}))
    assert [e.data for e in seen] == list(range(MILLION))


async def read_fast_tokens(events: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in events if e.type == "token"]


@pytest.mark.parametrize("thread_of", ["a sync node", "an async node's to_thread"])
async def test_a_worker_thread_waits_for_a_reader_that_is_far_behind(thread_of: str) -> None:
    emitted = 0
    piling_up, finished = threading.Event(), threading.Event()

    def producer(state: dict[str, Any]) -> None:
        nonlocal emitted
        for i in range(MILLION):
            emit("tick", i)
            emitted += 1
            if emitted == _events._HANDOFF_LIMIT:
                piling_up.set()
        finished.set()

    async def starts_a_thread(state: dict[str, Any]) -> None:
        await asyncio.to_thread(producer, state)  # the node's emitter goes along

    runner = graph.Runner(one_node(producer if thread_of == "a sync node" else starts_a_thread))
    events = runner.stream("custom")
    run = asyncio.ensure_future(runner.run("s", {}))
    # The reader reads nothing: the worker thread fills the hand-off queue and the reader's
    # share of memory, then has to stop until the reader reads.
    assert await asyncio.to_thread(piling_up.wait, 60)
    # A thread held back stops short of what the queue and the backlog hold; one that is not
    # (emitting onto the loop's buffers itself) runs past it, given a second.
    for _ in range(20):
        await asyncio.sleep(0.05)
        if emitted > _events._HANDOFF_LIMIT + _events._BACKLOG_LIMIT:
            break
    assert not finished.is_set()
    assert emitted <= _events._HANDOFF_LIMIT + _events._BACKLOG_LIMIT
    seen = await read_fast(events)
    await run
    assert_all_in_order_once(seen)


async def test_an_explicit_buffer_still_gives_gaps_and_never_holds_a_sync_node() -> None:
    runner = graph.Runner(one_node(emit_a_million_sync))
    bounded = runner.stream("custom", buffer=1000)
    result = await runner.run("s", {})  # nobody reads while it runs
    assert result.status == "completed"
    seen = [e async for e in bounded]
    assert [e.data for e in seen[:1000]] == list(range(1000))
    assert seen[1000].type == "gap"
    assert seen[1000].data["missed"] == MILLION - 1000
    assert seen[-1].type == "completed"

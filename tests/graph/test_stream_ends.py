"""Every `runner.stream()` ends, even when the broker refuses the run's last events.

The broker fails in the three ways the issue lists: the in-process broker closed mid-run, a
Redis broker whose Redis is down and whose outbox is full, and a state JSON cannot carry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos import graph, stream
from chronos.errors import BrokerError, ChronosError
from chronos.graph import emit
from chronos.stream.redis import RedisBroker
from tests.stream.redis_helpers import redis_server

pytestmark = pytest.mark.anyio

HANG = 30  # seconds: far beyond any of these runs; reaching it means a reader hung


def two_nodes(second: Any) -> graph.CompiledGraph:
    return (
        graph.StateGraph("g").add_node("first", lambda s: {"n": 1}, inline=True)
        .add_node("second", second).set_entry_point("first").add_edge("first", "second")
        .set_finish_point("second").compile()
    )


async def read_to_the_end(events: graph.EventStream) -> list[graph.StreamEvent]:
    return await asyncio.wait_for(collect(events), HANG)


async def collect(events: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in events]


async def run_and_read(
    runner: graph.Runner, state: dict[str, Any]
) -> tuple[list[list[graph.StreamEvent]], Exception | None]:
    """What two readers (everything; custom events, bounded) got, and what the run raised."""
    readers = [runner.stream(), runner.stream("custom", buffer=10)]

    async def outcome() -> Exception | None:
        try:
            await runner.run("s", state)
        except Exception as exc:
            return exc
        return None

    everything, custom, error = await asyncio.gather(
        read_to_the_end(readers[0]), read_to_the_end(readers[1]), outcome()
    )
    return [everything, custom], error


async def test_the_in_process_broker_closed_mid_run_ends_every_stream() -> None:
    broker = stream.Broker()

    async def close_it(state: dict[str, Any]) -> dict[str, Any]:
        emit("progress", 1)
        await broker.aclose()
        return {"n": 2}

    seen, error = await run_and_read(graph.Runner(two_nodes(close_it), broker=broker), {})
    assert isinstance(error, BrokerError)
    everything, custom = seen
    assert [e.type for e in everything][-3:] == ["custom", "node_end", "error"]
    assert [e.type for e in custom] == ["custom", "error"]


async def test_a_sync_node_whose_emits_the_closed_broker_refuses_ends_every_stream() -> None:
    broker = stream.Broker()

    def emit_after_close(state: dict[str, Any]) -> dict[str, Any]:
        asyncio.run(broker.aclose())  # the broker's close touches no loop of its own
        for i in range(100):
            emit("progress", i)
        return {"n": 2}

    seen, error = await run_and_read(graph.Runner(two_nodes(emit_after_close), broker=broker), {})
    assert isinstance(error, ChronosError)
    everything, _ = seen
    assert everything[-1].type == "error"
    # What the broker refused still reached the local readers: only the broker failed.
    assert [e.data for e in everything if e.type == "custom"] == list(range(100))


async def test_redis_down_with_a_full_outbox_ends_every_stream() -> None:
    with redis_server() as server:
        broker = RedisBroker(server.url, key_prefix="chronos-test:graph-ends:", max_outbox=20)

        async def flood_while_down(state: dict[str, Any]) -> dict[str, Any]:
            server.kill()
            for i in range(100):
                emit("progress", i)
            return {"n": 2}

        try:
            async with broker:
                seen, error = await run_and_read(
                    graph.Runner(two_nodes(flood_while_down), broker=broker), {}
                )
        finally:
            await asyncio.wait_for(broker.aclose(), HANG)
    assert isinstance(error, ChronosError)
    everything, custom = seen
    assert everything[-1].type == "error"
    assert custom[-1].type == "error"


async def test_a_state_holding_a_lone_surrogate_ends_every_stream() -> None:
    broker = stream.Broker()
    runner = graph.Runner(two_nodes(lambda s: {"n": 2}), broker=broker)
    seen, error = await run_and_read(runner, {"text": "\ud800"})
    await broker.aclose()
    everything, custom = seen
    # The broker may carry the string or refuse it; either way the run's outcome is told.
    assert everything[-1].type == ("completed" if error is None else "error")
    assert custom == [everything[-1]]

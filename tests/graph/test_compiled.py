"""A run's events and a broker's deliveries pass through the build of the hot paths this pass
expects.

The venv that `scripts/setup` makes runs the mypyc-compiled modules of `build/compiled` while
that build matches the source (`src/_chronos_compiled.py`), and the source otherwise or with
CHRONOS_INTERPRETED=1. `scripts/test` runs the whole suite interpreted, then the graph, stream
and demo suites again with CHRONOS_EXPECT_COMPILED=1: there the objects a user's run and
subscription go through must be the compiled classes, not a silent fallback to the source.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos import graph, stream
from tests.compiled import compiled, expected

pytestmark = pytest.mark.anyio


async def test_a_run_streams_its_events_through_the_expected_build() -> None:
    async def write(state: dict[str, Any]) -> dict[str, Any]:
        graph.emit("token", "Hi")
        return {"answer": "Hi"}

    runner = graph.Runner(
        graph.StateGraph("g").add_node("write", write).set_entry_point("write")
        .set_finish_point("write").compile()
    )
    events = runner.stream("messages")
    seen, result = await asyncio.gather(
        asyncio.wait_for(_collect(events), 10), runner.run("s", {}))
    assert [(e.type, e.data) for e in seen] == [("token", "Hi"), ("completed", None)]
    assert result.state["answer"] == "Hi"
    assert compiled(type(events).__aiter__) == expected(), type(events)


async def test_a_subscription_delivers_through_the_expected_build() -> None:
    async with stream.Broker() as broker:
        subscription = broker.subscribe("reader", ["t"])
        broker.publish(stream.Event("token", "Hi"), "t")
        received = await asyncio.wait_for(anext(subscription), 10)
        assert (received.type, received.data) == ("token", "Hi")
        assert compiled(type(subscription).__aiter__) == expected(), type(subscription)


async def _collect(events: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in events]

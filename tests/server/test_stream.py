"""A run's SSE body (`_stream.run_stream_response`) read straight from its iterator: which
events share a write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos.server._metrics import ServerMetrics
from chronos.server._stream import open_subscription, run_stream_response
from chronos.server._stream_modes import RUN_END
from chronos.stream import Broker, Event

BURST = 100


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _custom(n: int) -> Event:
    return Event("custom", {"data": {"n": n}, "path": [], "node_id": "node", "run_id": "run",
                            "name": "step"})


@pytest.mark.anyio
async def test_a_quiet_stream_writes_at_once_and_a_burst_shares_writes() -> None:
    broker = Broker()
    response = run_stream_response("run", open_subscription(broker, "thread"),
                                   modes=("custom",), subgraphs=False, started=True,
                                   send_metadata=False, metrics=ServerMetrics())
    body: Any = response.body_iterator
    broker.publish(_custom(0), "thread")
    first = await anext(body)
    assert first.count(b"event: custom") == 1  # alone: nothing was written before it

    async def burst() -> None:
        for n in range(1, BURST + 1):
            broker.publish(_custom(n), "thread")
            await asyncio.sleep(0)  # the reader is woken for each, as by a streaming model
        broker.publish(Event(RUN_END, {"run_id": "run", "status": "success"}), "thread")

    publishing = asyncio.create_task(burst())
    writes = [chunk async for chunk in body]
    await publishing
    assert sum(chunk.count(b"event: custom") for chunk in writes) == BURST
    assert len(writes) < BURST / 2
    await broker.aclose()

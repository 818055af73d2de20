"""A run's SSE body (`_stream.run_stream_response`) read straight from its iterator: which
events share a write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos.server import _stream
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


@pytest.mark.anyio
async def test_the_event_after_a_lone_write_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run's first graph event, then its model's first token just after: two writes close
    # together do not make a burst yet, so the second is not held for the window (a minute
    # here: were it held, the read below would time out).
    monkeypatch.setattr(_stream, "_BURST_SECONDS", 60.0)
    broker = Broker()
    response = run_stream_response("run", open_subscription(broker, "thread"),
                                   modes=("custom",), subgraphs=False, started=True,
                                   send_metadata=False, metrics=ServerMetrics())
    body: Any = response.body_iterator
    for n in range(2):
        broker.publish(_custom(n), "thread")
        async with asyncio.timeout(10):
            assert (await anext(body)).count(b"event: custom") == 1
    await body.aclose()
    await broker.aclose()


@pytest.mark.anyio
async def test_the_metadata_is_written_before_the_request_task_first_suspends() -> None:
    broker = Broker()
    left: list[bool] = []
    response = run_stream_response("run", open_subscription(broker, "thread"),
                                   modes=("custom",), subgraphs=False, started=False,
                                   send_metadata=True, metrics=ServerMetrics(),
                                   on_disconnect=lambda: left.append(True))
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}}
    serving = asyncio.create_task(response(scope, receive, send))
    await asyncio.sleep(0)  # the request's task has run until it first waits
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"].startswith(b"event: metadata")
    gone.set()  # the client leaves: the response ends, and the run is told
    await serving
    assert left == [True]
    await broker.aclose()

"""`receive_batch(timeout=...)` of the in-process broker's subscriptions.

One timer outlives the waits of a subscription (the SSE handler waits once per wake-up of every
connection). What must hold: each wait ends with `[]` after its own timeout when nothing comes,
a shorter timeout than the last is honoured, a wait without a timeout is never ended by an
earlier one's timer, and a subscription read from another event loop later still times out.
"""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from chronos import stream

pytestmark = pytest.mark.anyio


async def timed(
    subscription: stream.Subscription, timeout: float | None
) -> tuple[list[stream.Event], float]:
    start = time.monotonic()
    batch = await subscription.receive_batch(timeout=timeout)
    return batch, time.monotonic() - start


async def woken_by_an_event(
    broker: stream.Broker, subscription: stream.Subscription, timeout: float | None
) -> None:
    """Wait (arming the timer when `timeout` is set) until an event published meanwhile."""
    asyncio.get_running_loop().call_later(0.01, broker.publish, stream.Event("x"))
    with anyio.fail_after(5):
        assert len(await subscription.receive_batch(timeout=timeout)) == 1


async def test_each_wait_times_out_after_its_own_timeout() -> None:
    broker = stream.Broker()
    subscription = broker.subscribe("s")
    for _ in range(3):  # the timer armed by the first wait serves the next ones
        await woken_by_an_event(broker, subscription, 0.2)
    batch, waited = await timed(subscription, 0.2)
    assert batch == []
    assert 0.15 < waited < 2
    await woken_by_an_event(broker, subscription, 30)  # the timer now fires in 30 s
    batch, waited = await timed(subscription, 0.05)
    assert batch == []
    assert waited < 2
    await broker.aclose()


async def test_a_wait_without_timeout_outlasts_an_earlier_timer() -> None:
    broker = stream.Broker()
    subscription = broker.subscribe("s")
    await woken_by_an_event(broker, subscription, 0.05)  # arms a timer firing 0.05 s later
    with anyio.move_on_after(0.3) as scope:
        await subscription.receive_batch()
    assert scope.cancelled_caught  # still waiting: only an event ends it
    broker.publish(stream.Event("y"))
    with anyio.fail_after(5):
        assert [e.type for e in await subscription.receive_batch()] == ["y"]
    await broker.aclose()


async def test_read_from_another_loop_still_times_out() -> None:
    broker = stream.Broker()
    subscription = broker.subscribe("s")
    await woken_by_an_event(broker, subscription, 0.05)  # a timer on this loop
    result: list[tuple[list[stream.Event], float]] = []
    thread = threading.Thread(
        target=lambda: result.append(asyncio.run(timed(subscription, 0.3))), daemon=True
    )
    thread.start()
    thread.join(10)  # blocking this loop on purpose: its timer cannot fire meanwhile
    assert result
    batch, waited = result[0]
    assert batch == []
    assert waited < 5
    await broker.aclose()

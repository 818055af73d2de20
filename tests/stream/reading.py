"""Reading a subscription in tests: bounded in time, and failing when it ends early."""

from __future__ import annotations

import anyio

from chronos.stream import Event, Subscription


async def take(subscription: Subscription, count: int, seconds: float = 10) -> list[Event]:
    """The next `count` events of `subscription` (never more: the rest stay for the next read)."""
    events: list[Event] = []
    with anyio.fail_after(seconds):
        while len(events) < count:
            batch = await subscription.receive_batch(count - len(events))
            assert batch, "the subscription ended early"
            events.extend(batch)
    return events

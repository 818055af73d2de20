"""What every broker and every subscription offers: the in-process one and the Redis one.

`BrokerProtocol` is what code that publishes or subscribes (the graph runner, the server, an
app) should accept: publish, subscribe, unsubscribe, close. The HTTP side is not part of it:
`stream.SSEHandler(broker)` streams any broker's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Literal, NamedTuple, Protocol

from chronos.stream._event import Event

__all__ = [
    "BrokerProtocol",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
]

Overflow = Literal["drop_oldest", "disconnect"]
"""What a subscription does when its reader falls `max_pending` events behind.

`"drop_oldest"`: drop the oldest pending events and deliver a `stream.GAP` event
(`reason="overflow"`, the count and id range missed) in their place. `"disconnect"`: close the
subscription; reading it raises `SubscriptionOverflow` with the last id delivered, so the
reader can resume exactly from the replay buffer (an SSE client is disconnected and its
browser reconnects with `Last-Event-ID`).
"""


class SubscriptionStatistics(NamedTuple):
    """A snapshot of one subscription's buffer."""

    pending: int
    """Events waiting to be read."""
    max_pending: int
    """The bound on `pending`; beyond it the oldest events are dropped for a gap marker."""
    delivered: int
    """Events (including gap markers) read so far."""
    dropped: int
    """Events dropped so far because the subscriber read too slowly."""


class Subscription(Protocol):
    """A subscriber's stream of events: an async iterator and an async context manager.

    ```python
    async with broker.subscribe("client-123") as subscription:
        async for event in subscription:
            print(event.type, event.data)
    ```

    It ends when it is closed (`aclose()`, `broker.unsubscribe(id)`, `broker.aclose()`).
    Missed events are never skipped silently: a `stream.GAP` event takes their place.
    """

    @property
    def id(self) -> str:
        """The subscription id given to `subscribe`."""
        ...

    @property
    def topics(self) -> frozenset[str] | None:
        """The topics followed, or None for all of them."""
        ...

    @property
    def closed(self) -> bool:
        """True once the subscription has ended."""
        ...

    def __aiter__(self) -> Subscription: ...

    async def __anext__(self) -> Event: ...

    async def receive_batch(
        self, max_events: int = 1024, timeout: float | None = None
    ) -> list[Event]:
        """Wait for at least one event, then return all that are pending (up to `max_events`).

        Returns an empty list once the subscription has ended (see `closed`), or when
        `timeout` seconds pass with nothing to read.
        """
        ...

    def statistics(self) -> SubscriptionStatistics:
        """How full the subscription's buffer is, and what it has delivered and dropped."""
        ...

    async def aclose(self) -> None:
        """End the subscription and free what it holds. Calling it again does nothing."""
        ...

    async def __aenter__(self) -> Subscription: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BrokerProtocol(Protocol):
    """The interface of every broker: publish from anywhere, subscribe by id and topics.

    Accept this type where any broker will do (the in-process `Broker`, a Redis broker):

    ```python
    def report(broker: stream.BrokerProtocol, session_id: str) -> None:
        broker.publish(stream.Event(type="progress", data={"done": 3}), topic=session_id)
    ```
    """

    def publish(self, event: Event, topic: str | None = None) -> None:
        """Publish `event` to `topic` (default: `event.topic`, else `stream.DEFAULT_TOPIC`).

        Never blocks, and is safe from any thread and from synchronous code.
        """
        ...

    def subscribe(
        self,
        id: str,
        topics: Iterable[str] | None = None,
        *,
        last_event_id: str | None = None,
        replace: bool = False,
        max_pending: int | None = None,
        overflow: Overflow = "drop_oldest",
    ) -> Subscription:
        """Open subscription `id` to `topics` (None: all), resuming after `last_event_id`.

        `max_pending` (None: the broker's default) bounds its buffer; `overflow` says what
        happens when that is full.

        Raises:
            SubscriptionExists: `id` is open already and `replace` is False.
            InvalidLastEventID: `last_event_id` is not an id this kind of broker issues.
        """
        ...

    def unsubscribe(self, id: str) -> None:
        """Close subscription `id`, if it is open."""
        ...

    async def aclose(self) -> None:
        """End every subscription; the broker accepts no more events."""
        ...

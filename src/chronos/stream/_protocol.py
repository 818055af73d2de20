"""What every broker and every subscription offers: the in-process one and the Redis one.

`BrokerProtocol` is what code that only publishes or subscribes (the graph runner, an app)
should accept. A broker that subclasses it explicitly inherits `sse_handler`, so the HTTP side
is written once for every backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, NamedTuple, Protocol

from chronos.stream._event import Event

if TYPE_CHECKING:
    from chronos.stream._asgi import Authorize, SSEHandler

__all__ = [
    "DEFAULT_MAX_TOPICS",
    "BrokerProtocol",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
]

DEFAULT_MAX_TOPICS: Final = 100
"""How many topics one SSE connection may follow unless `sse_handler(max_topics=...)` says."""

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

    def sse_handler(
        self,
        subscription_id: str | None = None,
        *,
        topics: Sequence[str] | None = None,
        authorize: Authorize | None = None,
        named_events: bool = False,
        heartbeat: float = 15.0,
        retry: int | None = 3000,
        send_timeout: float = 30.0,
        cors_origins: Sequence[str] | None = None,
        cors_credentials: bool = False,
        overflow: Overflow = "drop_oldest",
        max_pending: int | None = None,
        max_topics: int = DEFAULT_MAX_TOPICS,
    ) -> SSEHandler:
        """An ASGI app streaming this broker's events as Server-Sent Events.

        See `stream.SSEHandler` for the arguments.
        """
        from chronos.stream._asgi import SSEHandler

        return SSEHandler(
            self,
            subscription_id,
            topics=topics,
            authorize=authorize,
            named_events=named_events,
            heartbeat=heartbeat,
            retry=retry,
            send_timeout=send_timeout,
            cors_origins=cors_origins,
            cors_credentials=cors_credentials,
            overflow=overflow,
            max_pending=max_pending,
            max_topics=max_topics,
        )

"""The in-process broker: publish from any thread, fan out to bounded per-subscriber buffers.

`publish` takes one lock, stamps the event, appends it to its topic's replay log and to the
buffer of every matching subscriber, and wakes the subscribers that are waiting. It never
awaits and never waits for a subscriber: a full buffer drops its oldest event and counts it,
and the subscriber reads a `GAP` marker in its place. Subscribers wait on an asyncio future of
their own loop; a publisher on another thread wakes them with `call_soon_threadsafe`, once per
loop per publish.

Replay: each topic keeps its last `replay_events` events (and none older than
`replay_seconds`). Subscribing with `last_event_id` copies the retained events after it into
the new subscription under the same lock that publishing takes, so nothing falls between
replay and live delivery. When events after that id may have been evicted, the replay starts
with a `GAP` marker saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

from chronos.errors import BrokerError, SubscriptionExists
from chronos.stream._event import DEFAULT_TOPIC, GAP, Event
from chronos.stream._ids import IdClock, Position, format_id, parse_id
from chronos.stream._protocol import BrokerProtocol, Overflow, Subscription
from chronos.stream._subscription import LocalSubscription, push_all, wake, wake_all

__all__ = ["Broker", "BrokerStatistics"]


class BrokerStatistics(NamedTuple):
    """A snapshot of a broker."""

    subscriptions: int
    """Open subscriptions."""
    topics: int
    """Topics with a replay log."""
    retained: int
    """Events held for replay, over all topics."""


class _TopicLog:
    __slots__ = ("entries", "evicted_through", "last")

    def __init__(self) -> None:
        self.entries: deque[tuple[Position, float, Event]] = deque()
        self.evicted_through: Position | None = None
        self.last: Position = (0, 0)

    def evict_older_than(self, deadline: float) -> None:
        entries = self.entries
        while entries and entries[0][1] < deadline:
            self.evicted_through = entries.popleft()[0]


class _Fanout(BrokerProtocol):
    """The subscription registry both brokers share: who follows which topic, and closing.

    Subclasses deliver into `LocalSubscription`s; `_lock` guards the registry and every
    subscription. Subscriptions to every topic live in `_all_topics`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, LocalSubscription] = {}
        self._by_topic: dict[str, dict[str, LocalSubscription]] = {}
        self._all_topics: dict[str, LocalSubscription] = {}

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        elsewhere: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiter in waiters:
            loop = waiter.get_loop()
            if loop is running:
                wake(waiter)
            else:
                elsewhere.setdefault(loop, []).append(waiter)
        for loop, group in elsewhere.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                loop.call_soon_threadsafe(wake_all, group)

    def unsubscribe(self, id: str) -> None:
        """Close subscription `id`; its reader's iteration ends. Unknown ids are ignored."""
        with self._lock:
            subscription = self._subscriptions.get(id)
            waiter = self._remove(subscription) if subscription is not None else None
        if waiter is not None:
            self._wake([waiter])

    def _close(self, subscription: LocalSubscription) -> None:
        with self._lock:
            waiter = self._remove(subscription)
        if waiter is not None:
            self._wake([waiter])

    def _remove(self, subscription: LocalSubscription) -> asyncio.Future[None] | None:
        """Unregister and close `subscription`; return its waiter to wake. Lock held."""
        if subscription._closed:
            return None
        subscription._closed = True
        subscription._pending.clear()
        id = subscription.id
        if self._subscriptions.get(id) is subscription:
            del self._subscriptions[id]
        if subscription.topics is None:
            self._all_topics.pop(id, None)
        else:
            for topic in subscription.topics:
                followers = self._by_topic.get(topic)
                if followers is not None and followers.get(id) is subscription:
                    del followers[id]
                    if not followers:
                        del self._by_topic[topic]
        waiter = subscription._waiter
        subscription._waiter = None
        return waiter


class Broker(_Fanout):
    """The in-process event broker: publish from anywhere, subscribe by id and topics.

    ```python
    broker = stream.Broker()
    async with broker.subscribe("client-123") as subscription:   # all topics
        broker.publish(stream.Event(type="node_end", data={"node": "extract"}))
        async for event in subscription:
            print(event.type, event.data)
    ```

    `publish` never blocks and is safe from any thread. Each subscriber has a buffer of
    `max_pending` events; when it reads too slowly the oldest are dropped and a `stream.GAP`
    event with `reason="overflow"`, the number missed and their id range takes their place
    (`overflow="drop_oldest"`, the default), or, with `subscribe(..., overflow="disconnect")`,
    the subscription is closed and reading it raises `SubscriptionOverflow` naming the last
    event delivered, to resume after.
    Each topic retains its last `replay_events` events for at most `replay_seconds`, so a
    subscriber can resume after an event id (`subscribe(..., last_event_id=...)`); the replay
    is exact, or starts with a `GAP` event (`reason="expired"`) when events may be gone.
    At most `max_topics` topics keep a replay log (the least recently published go first).

    Subscribers must run on asyncio event loops (any number, in any threads). Close the
    broker with `await broker.aclose()` (or `async with`) to end every subscription.
    """

    def __init__(
        self,
        *,
        max_pending: int = 1024,
        replay_events: int = 1024,
        replay_seconds: float = 300.0,
        max_topics: int = 10_000,
    ) -> None:
        if max_pending < 1 or replay_events < 0 or replay_seconds < 0 or max_topics < 1:
            raise ValueError("broker limits must be positive")
        self.max_pending = max_pending
        self.replay_events = replay_events
        self.replay_seconds = replay_seconds
        self.max_topics = max_topics
        super().__init__()
        self._clock = IdClock()
        # Positions at or before this may have been published and are not retained: events
        # from before this broker existed, and the logs of topics dropped by `max_topics`.
        self._forgotten_through: Position = self._clock.last
        self._logs: dict[str, _TopicLog] = {}  # least recently published first
        self._next_sweep = time.monotonic() + 1.0
        self._closed = False

    def __repr__(self) -> str:
        return f"<Broker subscriptions={len(self._subscriptions)} topics={len(self._logs)}>"

    def publish(self, event: Event, topic: str | None = None) -> None:
        """Publish `event` to `topic` (default: `event.topic`, else `stream.DEFAULT_TOPIC`).

        Never blocks; safe from any thread and from synchronous code. The event is stamped
        with a new id and serialised here, once, for every subscriber.

        Raises:
            TypeError: `event.data` is not JSON-serialisable (nothing is published).
            BrokerError: the broker is closed.
        """
        if topic is None:
            topic = event.topic if event.topic is not None else DEFAULT_TOPIC
        waiters: list[asyncio.Future[None]] = []
        with self._lock:
            if self._closed:
                raise BrokerError("the broker is closed")
            now = time.monotonic()  # under the lock: a topic's log stays in time order
            position = self._clock.next()
            published = Event(event.type, event.data, format_id(position), topic)
            published.json()  # raises TypeError before anything is stored
            self._retain(topic, position, now, published)
            followers = self._by_topic.get(topic)
            if followers:
                push_all(followers.values(), published, waiters)
            push_all(self._all_topics.values(), published, waiters)
            if now >= self._next_sweep:
                self._sweep(now)
        if waiters:
            self._wake(waiters)

    def _retain(self, topic: str, position: Position, now: float, event: Event) -> None:
        logs = self._logs
        log = logs.pop(topic, None)  # re-inserted last: the dict is ordered by recency
        if log is None:
            log = _TopicLog()
            while len(logs) >= self.max_topics:
                self._forget(next(iter(logs)))
        logs[topic] = log
        log.last = position
        entries = log.entries
        if self.replay_events:
            if len(entries) >= self.replay_events:
                log.evicted_through = entries.popleft()[0]
            entries.append((position, now, event))
        else:
            log.evicted_through = position
        deadline = now - self.replay_seconds
        if entries and entries[0][1] < deadline:
            log.evict_older_than(deadline)

    def _forget(self, topic: str) -> None:
        log = self._logs.pop(topic)
        self._forgotten_through = max(self._forgotten_through, log.last)

    def _sweep(self, now: float) -> None:
        # Age out events of topics nobody publishes to any more, at most once a second.
        deadline = now - self.replay_seconds
        for log in self._logs.values():
            log.evict_older_than(deadline)
        self._next_sweep = now + 1.0

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
        """Open subscription `id` to `topics` (None: every topic), live from now.

        ```python
        subscription = broker.subscribe("client-123", ["session-1"])
        ```

        The subscription receives every event published after this call returns, so
        subscribe before starting the work that publishes. With `last_event_id` it first
        replays the retained events after that id. With `replace=True` an open subscription
        with the same id is closed and this one takes its place; otherwise that is an error.
        `max_pending` overrides the broker's buffer size for this subscription; `overflow`
        says what happens when it is full (see the class docstring).

        Raises:
            SubscriptionExists: `id` is open already and `replace` is False.
            InvalidLastEventID: `last_event_id` is not of the form this broker issues.
            BrokerError: the broker is closed.
        """
        after = parse_id(last_event_id) if last_event_id is not None else None
        wanted = frozenset(topics) if topics is not None else None
        subscription = LocalSubscription(
            self._lock, self._close, id, wanted, max_pending or self.max_pending, overflow
        )
        waiter = None
        with self._lock:
            if self._closed:
                raise BrokerError("the broker is closed")
            previous = self._subscriptions.get(id)
            if previous is not None:
                if not replace and not previous._overflowed:
                    raise SubscriptionExists(id)
                waiter = self._remove(previous)
            if after is not None:
                self._replay(subscription, after)
            self._subscriptions[id] = subscription
            if wanted is None:
                self._all_topics[id] = subscription
            else:
                for topic in wanted:
                    self._by_topic.setdefault(topic, {})[id] = subscription
        if waiter is not None:
            self._wake([waiter])
        return subscription

    def _replay(self, subscription: LocalSubscription, after: Position) -> None:
        """Queue the retained events after `after`, and a gap if some may be gone. Lock held."""
        if after > self._clock.last:
            reason: str | None = "unknown"
            logs: list[_TopicLog] = []
        else:
            topics = subscription.topics
            if topics is None:
                logs = list(self._logs.values())
            else:
                logs = [log for topic in topics if (log := self._logs.get(topic)) is not None]
            deadline = time.monotonic() - self.replay_seconds
            for log in logs:
                log.evict_older_than(deadline)
            evicted = [log.evicted_through for log in logs if log.evicted_through is not None]
            horizon = max([self._forgotten_through, *evicted])
            reason = "expired" if after < horizon else None
        if reason is not None:
            subscription._gap = Event(
                GAP,
                {"reason": reason, "missed": None, "first_id": None, "last_id": None},
                id=format_id(after),
            )
        streams = [[e for e in log.entries if e[0] > after] for log in logs]
        for _, _, event in heapq.merge(*streams, key=lambda entry: entry[0]):
            subscription._push(event)

    def statistics(self) -> BrokerStatistics:
        """How many subscriptions are open and how many events are retained for replay."""
        with self._lock:
            return BrokerStatistics(
                subscriptions=len(self._subscriptions),
                topics=len(self._logs),
                retained=sum(len(log.entries) for log in self._logs.values()),
            )

    async def aclose(self) -> None:
        """End every subscription and refuse further events. Calling it again does nothing."""
        with self._lock:
            self._closed = True
            waiters = [self._remove(s) for s in list(self._subscriptions.values())]
            self._logs.clear()
        self._wake([w for w in waiters if w is not None])

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

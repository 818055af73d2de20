"""The in-process broker: publish from any thread, fan out to bounded per-subscriber buffers.

`publish` takes one lock, stamps the event, appends it to its topic's replay log and to the
buffer of every matching subscriber, and wakes the subscribers that are waiting. It never
awaits and never waits for a subscriber: a full buffer drops its oldest event and counts it,
and the subscriber reads a `GAP` marker in its place. Subscribers wait on an asyncio future of
their own loop; a publisher on another thread wakes them with `call_soon_threadsafe`, once per
loop per publish.

Replay: each topic keeps its last `replay_events` events (and none older than
`replay_seconds`), as their SSE frames only: one exact-size bytes per event, the JSON inside
it, so a retained event costs its frame plus about 45 bytes (an `Event` with its caches cost
4 KiB and more). Subscribing with `last_event_id` registers the subscription first, so live
events queue up in it, and then gathers the retained events after that id and up to the last
one issued before it registered, topic by topic, taking the lock once per topic and never for
a whole replay: publishers on other threads wait for one topic's bisect at most. A replay is
bounded by the subscription's buffer: of the events after the id it keeps the newest
`max_pending` (`overflow="disconnect"`: the oldest, then it is closed as overflowing), counts
the rest into the overflow `GAP`, and looks at no more of a topic's events than that. The
replayed events go in front of the live ones. When events after that id may have been
evicted, the replay starts with a `GAP` marker saying so.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import orjson

from chronos.errors import BrokerError, SubscriptionExists
from chronos.stream._asgi import DEFAULT_MAX_TOPICS, Authorize, SSEHandler
from chronos.stream._event import DEFAULT_TOPIC, Event, frame, gap_event, prepare, stamp
from chronos.stream._ids import IdClock, Position, format_id, parse_id
from chronos.stream._protocol import BrokerProtocol, Overflow, Subscription
from chronos.stream._replay import Replay, TopicLog, put_first
from chronos.stream._subscription import LocalSubscription, push_all, wake

__all__ = ["Broker", "BrokerStatistics"]

_UNDECODED: Final = object()  # an event's data not decoded yet


class BrokerStatistics(NamedTuple):
    """A snapshot of a broker."""

    subscriptions: int
    """Open subscriptions."""
    topics: int
    """Topics with a replay log."""
    retained: int
    """Events held for replay, over all topics."""


class Fanout(BrokerProtocol):
    """The subscription registry both brokers share: who follows which topic, and closing.

    Subclasses deliver into `LocalSubscription`s; `_lock` guards the registry and every
    subscription. Subscriptions to every topic live in `_all_topics`. Also `sse_handler`,
    the spelling of `stream.SSEHandler(broker)` that both brokers offer.
    """

    max_pending: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, LocalSubscription] = {}
        self._by_topic: dict[str, dict[str, LocalSubscription]] = {}
        self._all_topics: dict[str, LocalSubscription] = {}
        self._closed = False

    @property
    def lock(self) -> threading.Lock:
        """Guards the registry and every subscription; held by the methods marked so."""
        return self._lock

    @property
    def closed(self) -> bool:
        """True once `aclose` has begun."""
        return self._closed

    def _open(
        self,
        id: str,
        topics: Iterable[str] | None,
        *,
        replace: bool,
        max_pending: int | None,
        overflow: Overflow,
    ) -> tuple[LocalSubscription, asyncio.Future[None] | None]:
        """The half of `subscribe` every broker shares: a new subscription, registered by id.

        It follows nothing yet (`attach` does that). Returns it and the waiter of a replaced
        subscription, to wake once the lock is released. Lock held.

        Raises:
            BrokerError: the broker is closed.
            SubscriptionExists: `id` is open already and `replace` is False.
        """
        wanted = frozenset(topics) if topics is not None else None
        subscription = LocalSubscription(
            self._lock, self._close, id, wanted, max_pending or self.max_pending, overflow
        )
        if self._closed:
            raise BrokerError("the broker is closed")
        waiter = None
        previous = self._subscriptions.get(id)
        if previous is not None:
            if not replace and not previous._overflowed:
                raise SubscriptionExists(id)
            waiter = self._remove(previous)
        self._subscriptions[id] = subscription
        return subscription, waiter

    def attach(self, subscription: LocalSubscription, topics: Iterable[str] | None) -> None:
        """Deliver `topics`' events (None: every topic's) to `subscription` from now. Lock held."""
        if topics is None:
            self._all_topics[subscription.id] = subscription
        else:
            for topic in topics:
                self._by_topic.setdefault(topic, {})[subscription.id] = subscription

    def followers(self, topic: str) -> list[LocalSubscription]:
        """The subscriptions that get `topic`'s events. Lock held."""
        named = self._by_topic.get(topic)
        followers = list(named.values()) if named else []
        followers.extend(self._all_topics.values())
        return followers

    def followed(self) -> tuple[set[str], bool]:
        """The topics some subscription names, and whether one follows every topic. Lock held."""
        return set(self._by_topic), bool(self._all_topics)

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
        """`stream.SSEHandler(self, ...)`: an ASGI app streaming this broker's events.

        ```python
        app = Starlette(routes=[Route("/events", broker.sse_handler("client-123"))])
        ```

        See `stream.SSEHandler` for the arguments.
        """
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

    def unsubscribe(self, id: str) -> None:
        """Close subscription `id`; its reader's iteration ends. Unknown ids are ignored."""
        with self._lock:
            subscription = self._subscriptions.get(id)
            waiter = self._remove(subscription) if subscription is not None else None
        if waiter is not None:
            wake([waiter])

    def _close(self, subscription: LocalSubscription) -> None:
        with self._lock:
            waiter = self._remove(subscription)
        if waiter is not None:
            wake([waiter])

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


class Broker(Fanout):
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
        self._logs: dict[str, TopicLog] = {}  # least recently published first
        self._next_sweep = time.monotonic() + 1.0

    def __repr__(self) -> str:
        return f"<Broker subscriptions={len(self._subscriptions)} topics={len(self._logs)}>"

    def publish(self, event: Event, topic: str | None = None) -> None:
        """Publish `event` to `topic` (default: `event.topic`, else `stream.DEFAULT_TOPIC`).

        Never blocks; safe from any thread and from synchronous code. The event is stamped
        with a new id and serialised here, once, for every subscriber; subscribers get the
        data its JSON holds (see `stream.Event`), as from every broker.

        Raises:
            EventNotSerializable: `event.data` holds something JSON cannot carry (nothing is
                published). It is also a TypeError.
            BrokerError: the broker is closed.
        """
        if topic is None:
            topic = event.topic if event.topic is not None else DEFAULT_TOPIC
        data_json, rest = prepare(event, topic)  # outside the lock: the costly half
        # Decoded for subscribers only: a topic nobody follows (a run's tokens while no client
        # streams it) keeps just the frame. Looked up without the lock: one who subscribes
        # meanwhile gets the data decoded under it.
        data = _UNDECODED
        every_topic = self._all_topics
        if every_topic or self._by_topic.get(topic):
            data = orjson.loads(data_json)
        waiters: list[asyncio.Future[None]] = []
        with self._lock:
            if self._closed:
                raise BrokerError("the broker is closed")
            position = self._clock.next()
            id = format_id(position)
            sse = frame(id, rest)
            self._retain(topic, position, sse)
            followers = self._by_topic.get(topic)
            if followers or every_topic:
                if data is _UNDECODED:
                    data = orjson.loads(data_json)
                published = stamp(event, topic, id, data, sse)
                if followers:
                    push_all(followers.values(), published, waiters)
                if every_topic:
                    push_all(every_topic.values(), published, waiters)
            now = time.monotonic()
            if now >= self._next_sweep:
                self._sweep(now)
        if waiters:
            wake(waiters)

    def _retain(self, topic: str, position: Position, frame: bytes) -> None:
        logs = self._logs
        log = logs.pop(topic, None)  # re-inserted last: the dict is ordered by recency
        if log is None:
            log = TopicLog()
            while len(logs) >= self.max_topics:
                self._forget(next(iter(logs)))
        logs[topic] = log
        log.last = position
        if not self.replay_events:
            log.evicted = frame
            return
        frames = log.frames
        if len(frames) >= self.replay_events:
            log.evicted = frames.popleft()
        frames.append(frame)

    def _forget(self, topic: str) -> None:
        log = self._logs.pop(topic)
        self._forgotten_through = max(self._forgotten_through, log.last)

    def _sweep(self, now: float) -> None:
        # Age events out, at most once a second: a replay ages its topics first anyway, so
        # this only bounds how long memory is held.
        deadline_ms = self._deadline_ms()
        for log in self._logs.values():
            log.evict_older_than(deadline_ms)
        self._next_sweep = now + 1.0

    def _deadline_ms(self) -> int:
        return time.time_ns() // 1_000_000 - int(self.replay_seconds * 1000)

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
        replays the retained events after that id (at most `max_pending` of them: the newest,
        after an overflow `GAP` counting the others). With `replace=True` an open subscription
        with the same id is closed and this one takes its place; otherwise that is an error.
        `max_pending` overrides the broker's buffer size for this subscription; `overflow`
        says what happens when it is full (see the class docstring).

        Raises:
            SubscriptionExists: `id` is open already and `replace` is False.
            InvalidLastEventID: `last_event_id` is not of the form this broker issues.
            BrokerError: the broker is closed.
        """
        after = parse_id(last_event_id) if last_event_id is not None else None
        with self._lock:
            subscription, waiter = self._open(
                id, topics, replace=replace, max_pending=max_pending, overflow=overflow
            )
            wanted = subscription.topics
            self.attach(subscription, wanted)
            issued = self._clock.last
            # The most recently published first: a bounded replay stops looking sooner.
            names = list(wanted) if wanted is not None else list(reversed(self._logs))
        if waiter is not None:
            wake([waiter])
        if after is not None:
            self._replay(subscription, after, issued, names)
        return subscription

    def _replay(
        self, subscription: LocalSubscription, after: Position, issued: Position, names: list[str]
    ) -> None:
        """Put the retained events after `after` (up to `issued`) before the live ones.

        Runs after `subscription` is registered, so everything published after `issued` is in
        its buffer already; the lock is taken once per topic, and once to merge.
        """
        replay = Replay(subscription._max_pending, oldest=subscription._disconnect)
        if after <= issued:
            deadline_ms = self._deadline_ms()
            for topic in names:
                with self._lock:
                    log = self._logs.get(topic)
                    if log is None:
                        continue
                    log.evict_older_than(deadline_ms)
                    replay.expired = replay.expired or log.evicted_after(after)
                    replay.add(log.frames, after, issued)
        events = replay.events()  # decoded outside the lock
        waiter = None
        with self._lock:
            if subscription._closed:
                return
            if after > issued:
                reason: str | None = "unknown"
            elif replay.expired or after < self._forgotten_through:
                reason = "expired"
            else:
                reason = None
            if reason is not None:
                subscription._gap = gap_event(reason, format_id(after))
            put_first(subscription, events, replay)
            waiter = subscription._waiter
            subscription._waiter = None
        if waiter is not None:
            wake([waiter])

    def statistics(self) -> BrokerStatistics:
        """How many subscriptions are open and how many events are retained for replay."""
        with self._lock:
            return BrokerStatistics(
                subscriptions=len(self._subscriptions),
                topics=len(self._logs),
                retained=sum(len(log.frames) for log in self._logs.values()),
            )

    async def aclose(self) -> None:
        """End every subscription and refuse further events. Calling it again does nothing."""
        with self._lock:
            self._closed = True
            waiters = [self._remove(s) for s in list(self._subscriptions.values())]
            self._logs.clear()
        wake([w for w in waiters if w is not None])

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

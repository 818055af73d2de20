"""The Redis broker's reader: one blocking XREAD per process, fanned out to subscriptions.

Split from `redis.py` because it is the subtle half: it owns the cursor of every followed
topic and is the only code that advances them, so admitting a new subscription (replaying what
it needs from Redis), fanning out live entries and reporting gaps after an outage or a lag
cannot race with each other. It reads the broker's registry under the broker's lock.

Subscriptions to every topic: the reader then also follows the stream on which publishers
announce each topic's first event (its cursor is `announce_cursor`), starts following every topic
announced there from that first event, and forgets topics that expired in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chronos.stream._broker import Broker
from chronos.stream._event import GAP, Event
from chronos.stream._ids import Position, format_id
from chronos.stream._subscription import LocalSubscription, push_all

if TYPE_CHECKING:
    from chronos.stream.redis import RedisBroker

__all__ = [
    "ORIGIN",
    "UNAVAILABLE",
    "Backoff",
    "Joiner",
    "Reader",
    "entries",
    "gap_event",
    "position_of",
    "text",
]

# Errors after which the connection is re-established; anything else is a bug to surface.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
ORIGIN: Position = (0, 0)


_Entry = tuple[Position, str, dict[bytes, bytes]]  # (id, topic, fields) as read


def entries(rows: Any, topic: str) -> list[_Entry]:
    """XRANGE / XREAD rows, `[(id, fields), ...]`, as entries of `topic`."""
    return [(position_of(id), topic, fields) for id, fields in rows or ()]


def text(value: Any) -> str:
    """A string Redis returned, as bytes (decode_responses is off) or already as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def position_of(value: Any) -> Position:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Backoff:
    """Capped, jittered exponential delays: 50 ms, 100 ms, ... up to 2 s."""

    def __init__(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        delay = min(2.0, 0.05 * (1 << self.attempt))
        self.attempt = min(self.attempt + 1, 16)
        return delay * (0.5 + random.random() / 2)


class Joiner:
    """A subscription waiting to be admitted by the reader, with where each topic starts."""

    __slots__ = ("after", "announce_start", "counts", "gap", "since_ms", "start", "subscription")

    def __init__(self, subscription: LocalSubscription, after: Position | None) -> None:
        self.subscription = subscription
        self.after = after
        self.since_ms = time.time_ns() // 1_000_000  # when `subscribe` was called
        self.start: dict[str, Position] = {}
        self.counts: dict[str, int] = {}  # `c` of the entry at `start`, where known
        self.announce_start: Position = ORIGIN  # to every topic: where announcements start
        self.gap: Event | None = None


class Reader:
    """The broker's reader task and the state only it touches."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self.cursors: dict[str, Position] = {}  # last id read per followed topic
        self._counts: dict[str, int] = {}  # `c` of the last entry read per topic
        # For subscriptions to every topic: the topics known, with the id of the announcement
        # that made them known (ORIGIN: alive when a subscription to every topic began).
        self._known: dict[str, Position] = {}
        self.announce_cursor: Position | None = None  # followed while they exist
        self._next_prune = 0.0

    async def read(self) -> None:
        backoff = Backoff()
        run_id: str | None = None
        wake_cursor = ORIGIN  # the wake-up key is new: every entry in it counts
        recovering = True
        while not self._broker._closed:
            try:
                if recovering:
                    run_id = await self.recover(run_id)
                    recovering = False
                await self.admit()
                streams: dict[Any, Any] = {self._broker._wake_key: format_id(wake_cursor)}
                for topic, cursor in self.cursors.items():
                    streams[self._broker._key(topic)] = format_id(cursor)
                if self.announce_cursor is not None:
                    streams[self._broker._announce_key] = format_id(self.announce_cursor)
                reply: Any = await self._broker._reader_redis.xread(
                    streams, count=1000, block=self._broker._block_ms
                )
                backoff.attempt = 0
            except UNAVAILABLE:
                recovering = True
                await asyncio.sleep(backoff.next())
                continue
            batch: list[_Entry] = []
            announced: list[_Entry] = []
            for key, rows in reply:  # RESP2: [[key, [(id, fields), ...]], ...]
                name = key.decode()
                if name == self._broker._wake_key:
                    wake_cursor = position_of(rows[-1][0])
                    continue
                if name == self._broker._announce_key:
                    announced.extend(entries(rows, ""))
                    continue
                batch.extend(entries(rows, name[len(self._broker._topic_prefix) :]))
            if batch and len(self.cursors) > 1:
                try:
                    batch.extend(await self.read_rest(batch))
                except UNAVAILABLE:
                    recovering = True  # the next reads bring what this one could not
            if announced:
                # A new topic's first entries may be older than entries of other topics in
                # this batch: read them up to the newest here, so delivery stays in id order.
                limit = max(entry[0] for entry in batch + announced)
                try:
                    batch.extend(await self.discover(announced, limit))
                except UNAVAILABLE:
                    recovering = True  # the next reads bring what this one could not
                self.announce_cursor = announced[-1][0]
            self.deliver(batch)

    async def read_rest(self, batch: list[_Entry]) -> list[_Entry]:
        """What the other followed topics hold already, read without blocking.

        Redis before 7.2 answers a blocked XREAD with the one stream that woke it, though a
        transaction wrote to several: reading the rest now delivers what was written together
        in id order, across topics.
        """
        after = dict(self.cursors)
        for position, topic, _ in batch:
            if position > after.get(topic, ORIGIN):
                after[topic] = position
        streams: dict[Any, Any] = {self._broker._key(t): format_id(p) for t, p in after.items()}
        reply: Any = await self._broker._reader_redis.xread(streams, count=1000)
        skip = len(self._broker._topic_prefix)
        return [e for key, rows in reply or () for e in entries(rows, key.decode()[skip:])]

    async def recover(self, run_id: str | None) -> str:
        """After (re)connecting: report a gap on topics whose next events Redis lost."""
        info = await self._broker._reader_redis.info("server")
        new_run_id = str(info["run_id"])
        for topic, cursor in list(self.cursors.items()):
            if cursor == ORIGIN:
                continue
            key = self._broker._key(topic)
            lost = False
            if run_id is not None and new_run_id != run_id:
                # A restarted Redis kept our last entry only if it persisted the stream.
                lost = not await self._broker._reader_redis.xrange(
                    key, format_id(cursor), format_id(cursor)
                )
            if not lost:
                with contextlib.suppress(ResponseError):
                    stream = await self._broker._reader_redis.xinfo_stream(key)
                    first = stream.get("first-entry")
                    trimmed = int(stream["entries-added"]) > int(stream["length"])
                    lost = trimmed and first is not None and cursor < position_of(first[0])
            if lost:
                self.deliver_gap(topic, gap_event("expired", format_id(cursor)))
        return new_run_id

    async def discover(self, announced: list[_Entry], limit: Position) -> list[_Entry]:
        """Follow the topics `announced`, from their first entry; return those up to `limit`."""
        found: list[_Entry] = []
        for position, _, fields in announced:
            topic = fields[b"t"].decode()
            self._known[topic] = position
            if topic in self.cursors:
                continue  # followed already (the announcement of a topic back from expiry)
            start = _before(position)
            self.cursors[topic] = start
            self._counts[topic] = 0  # announced at its first event: `c` is 1
            rows = await self._broker._reader_redis.xrange(
                self._broker._key(topic), f"({format_id(start)}", format_id(limit)
            )
            found.extend(entries(rows, topic))
        return found

    async def admit(self) -> None:
        """Attach resolved joiners, replaying what they need before following live."""
        with self._broker._lock:
            ready, self._broker._ready = self._broker._ready, []
            followed = set(self._broker._by_topic)
            everything = bool(self._broker._all_topics) or any(
                j.subscription.topics is None for j in ready
            )
        if everything:
            await self._prune()
            followed.update(self._known)
        else:
            self._known.clear()
            self.announce_cursor = None
        for topic in list(self.cursors):
            if topic not in followed:
                del self.cursors[topic]
                self._counts.pop(topic, None)
        for joiner in ready:
            subscription = joiner.subscription
            if subscription.closed:
                continue
            if subscription.topics is None:
                await self._catch_up_announcements(joiner)
            replay: list[_Entry] = []
            for topic, start in joiner.start.items():
                key = self._broker._key(topic)
                cursor = self.cursors.get(topic)
                if cursor is None:
                    self.cursors[topic] = start  # the next XREAD brings what follows
                    if topic in joiner.counts:
                        self._counts[topic] = joiner.counts[topic]
                    continue
                if cursor < start:  # catch current followers up to the newcomer's start
                    rows = await self._broker._reader_redis.xrange(
                        key, f"({format_id(cursor)}", "+"
                    )
                    self.deliver(entries(rows, topic))
                    cursor = max(self.cursors[topic], start)
                    self.cursors[topic] = cursor
                if start < cursor:
                    rows = await self._broker._reader_redis.xrange(
                        key, f"({format_id(start)}", format_id(cursor)
                    )
                    replay.extend(entries(rows, topic))
            replay.sort(key=lambda entry: entry[0])
            waiters: list[asyncio.Future[None]] = []
            with self._broker._lock:
                if subscription._closed:
                    continue
                subscription._gap = joiner.gap
                for position, topic, fields in replay:
                    waiter = subscription._push(_event(position, topic, fields))
                    if waiter is not None:
                        waiters.append(waiter)
                if joiner.gap is not None and subscription._waiter is not None:
                    waiters.append(subscription._waiter)
                    subscription._waiter = None
                if subscription.topics is None:
                    self._broker._all_topics[subscription.id] = subscription
                else:
                    for topic in joiner.start:
                        by_topic = self._broker._by_topic
                        by_topic.setdefault(topic, {})[subscription.id] = subscription
            Broker._wake(waiters)

    async def _catch_up_announcements(self, joiner: Joiner) -> None:
        """Make the reader know every topic a new subscription to all of them must follow."""
        start = joiner.announce_start
        cursor = self.announce_cursor
        if cursor is None:
            self.announce_cursor = start
        elif cursor < start:  # announced before the newcomer looked: existing topics now
            rows = await self._broker._reader_redis.xrange(
                self._broker._announce_key, f"({format_id(cursor)}", format_id(start)
            )
            for position, _, fields in entries(rows, ""):
                topic = fields[b"t"].decode()
                self._known[topic] = position
                self.cursors.setdefault(topic, _before(position))
            self.announce_cursor = start
        for topic in joiner.start:
            self._known.setdefault(topic, ORIGIN)
        for topic, announced in self._known.items():
            if topic not in joiner.start and announced > start:
                # New since the newcomer listed the topics, and followed already: it gets
                # that topic from its first entry, like the subscriptions that saw it begin.
                joiner.start[topic] = _before(announced)

    async def _prune(self) -> None:
        """Forget topics that have expired in Redis, at most once per `replay_seconds`."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self._broker.replay_seconds
        horizon = int(time.time() * 1000 - self._broker.replay_seconds * 1000)
        names = await self._broker._reader_redis.zrangebyscore(
            self._broker._registry_key, horizon, "+inf"
        )
        alive = {text(name) for name in names}
        for topic in [t for t in self._known if t not in alive]:
            del self._known[topic]

    def deliver(self, entries: list[_Entry]) -> None:
        """Fan entries (from any topics) out to their followers, in id order."""
        if not entries:
            return
        entries.sort(key=lambda entry: entry[0])
        waiters: list[asyncio.Future[None]] = []
        with self._broker._lock:
            everyone = list(self._broker._all_topics.values())
            for position, topic, fields in entries:
                previous = self.cursors.get(topic, ORIGIN)
                if position <= previous:
                    continue  # read already (a catch-up overlapping a blocking read)
                self.cursors[topic] = position
                followers: Iterable[LocalSubscription] = self._broker._by_topic.get(
                    topic, {}
                ).values()
                if everyone:
                    followers = [*followers, *everyone]
                count, last = int(fields.get(b"c", 0)), self._counts.get(topic)
                self._counts[topic] = count
                if last is not None and count > last + 1:
                    # This reader fell further behind than the stream's retention.
                    gap = Event(
                        GAP,
                        {
                            "reason": "expired",
                            "missed": count - last - 1,
                            "first_id": None,
                            "last_id": None,
                        },
                        id=format_id(previous),
                    )
                    push_all(followers, gap, waiters)
                push_all(followers, _event(position, topic, fields), waiters)
        Broker._wake(waiters)

    def deliver_gap(self, topic: str, gap: Event) -> None:
        with self._broker._lock:
            followers = list(self._broker._by_topic.get(topic, {}).values())
            followers.extend(self._broker._all_topics.values())
            waiters: list[asyncio.Future[None]] = []
            push_all(followers, gap, waiters)
        Broker._wake(waiters)


def _before(position: Position) -> Position:
    """The id just before `position`: reading after it starts at `position`."""
    ms, seq = position
    return (ms, seq - 1) if seq else (ms - 1, 2**64 - 1)


def _event(position: Position, topic: str, fields: dict[bytes, bytes]) -> Event:
    return Event(fields[b"t"].decode(), orjson.loads(fields[b"d"]), format_id(position), topic)


def gap_event(reason: str, id: str) -> Event:
    return Event(GAP, {"reason": reason, "missed": None, "first_id": None, "last_id": None}, id=id)

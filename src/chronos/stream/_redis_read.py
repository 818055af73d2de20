"""The Redis broker's reader: one blocking XREAD per process, fanned out to subscriptions.

Split from `redis.py` because it is the subtle half: it owns the cursor of every followed
topic and is the only code that advances them, so admitting a new subscription (replaying what
it needs from Redis), fanning out live entries and reporting gaps after an outage or a lag
cannot race with each other. It reads the broker's registry under the broker's lock.

Fairness: the blocking read names three streams whatever is followed (the wake-up key, the
notices, the announcements). A notice is a copy of an event with its topic's name, in the
order Redis ran the publishes: the reader delivers those of followed topics as they come, in
bounded batches, so a connection following a hundred busy topics costs a quiet client its
place in that order, not a read of every topic (`bench/redis_fairness.py`). Topics *due*
(newly followed, or after notices were lost) are read from their own streams in turns by
`read_due`, a bounded batch each.

Subscriptions to every topic: the reader then also follows the stream on which publishers
announce each topic's first event (its cursor is `announce_cursor`), starts following every topic
announced there from that first event, and forgets topics that expired in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chronos.stream._broker import Fanout
from chronos.stream._event import Event, gap_event
from chronos.stream._ids import Position, format_id
from chronos.stream._subscription import LocalSubscription, push_all, wake

__all__ = [
    "NOTICES_KEPT",
    "ORIGIN",
    "UNAVAILABLE",
    "Backoff",
    "Joiner",
    "Keys",
    "Reader",
    "entries",
    "position_of",
    "text",
]

NOTICES_KEPT: Final = 4096
"""About how many notices Redis keeps: a reader further behind reads every topic it follows."""
_log: Final = logging.getLogger("chronos.stream")
_NOTICES_PER_READ: Final = 1024
_TOPICS_PER_READ: Final = 256
_ENTRIES_PER_READ: Final = 4096
_MIN_PER_TOPIC: Final = 16

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
    """Capped, jittered exponential delays: 50 ms, 100 ms, ... up to 2 s.

    An outage is logged once at its start (WARNING, the error's type only: its text may hold
    a URL with a password) and once at its end (INFO), on the `chronos.stream` logger.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.attempt = 0

    def next(self, error: BaseException) -> float:
        """The delay before the next try after `error`."""
        if self.attempt == 0:
            _log.warning("%s lost Redis error=%s; retrying", self.what, type(error).__name__,
                         extra={"chronos": {"lost": self.what, "error": type(error).__name__}})
        delay = min(2.0, 0.05 * (1 << self.attempt))
        self.attempt = min(self.attempt + 1, 16)
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        """A try succeeded."""
        if self.attempt:
            _log.info("%s reached Redis again", self.what,
                      extra={"chronos": {"recovered": self.what}})
            self.attempt = 0


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


class Keys:
    """Where one broker's data lives in Redis: every name derives from its key prefix.

    Topics' keys and the broker's own never collide, whatever a client names a topic.
    """

    __slots__ = ("_count", "_topic", "announce", "clock", "notices", "registry", "wake")

    def __init__(self, prefix: str) -> None:
        self._topic = prefix + "t:"  # a topic's stream
        self._count = prefix + "c:"  # a topic's event counter
        self.clock = prefix + "_clock"  # ids: the last ms, the sequence, the epoch
        self.registry = prefix + "_topics"  # every live topic, by last event time
        self.announce = prefix + "_new"  # topics' first events
        self.notices = prefix + "_notices"  # every event's topic, for the readers
        self.wake = f"{prefix}_wake:{uuid.uuid4().hex}"  # this process's reader's wake-up

    def topic(self, topic: str) -> str:
        """The key of `topic`'s stream."""
        return self._topic + topic

    def count(self, topic: str) -> str:
        """The key of `topic`'s event counter."""
        return self._count + topic

    def topic_of(self, key: bytes) -> str:
        """The topic whose stream is `key`."""
        return key.decode()[len(self._topic) :]


class Reader:
    """The broker's reader task and the state only it touches.

    What it needs of the broker, and nothing else: its reader's Redis connection, its key
    names, how long to block and to keep events, the subscription registry (`fanout`, read
    and written under `fanout.lock`), and `take_ready`, which hands over the subscriptions the
    writer has resolved (lock held).
    """

    def __init__(
        self,
        fanout: Fanout,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        block_ms: int,
        replay_seconds: float,
        take_ready: Callable[[], list[Joiner]],
    ) -> None:
        self._fanout = fanout
        self._redis = redis
        self._keys = keys
        self._block_ms = block_ms
        self._replay_seconds = replay_seconds
        self._take_ready = take_ready
        self.cursors: dict[str, Position] = {}  # last id read per followed topic
        self._counts: dict[str, int] = {}  # `c` of the last entry read per topic
        # For subscriptions to every topic: the topics known, with the id of the announcement
        # that made them known (ORIGIN: alive when a subscription to every topic began).
        self._known: dict[str, Position] = {}
        self.announce_cursor: Position | None = None  # followed while they exist
        self._notice_cursor = ORIGIN  # the last notice read
        # The sequence number (`n`) the next notice should follow; None: not reading them.
        self._notice_seq: int | None = None
        # Followed topics that may hold unread entries, in the order they are to be read.
        self._due: dict[str, None] = {}
        self._next_prune = 0.0

    async def read(self) -> None:
        backoff = Backoff("redis broker reader")
        run_id: str | None = None
        wake_cursor = ORIGIN  # the wake-up key is new: every entry in it counts
        recovering = True
        while not self._fanout.closed:
            try:
                if recovering:
                    run_id = await self.recover(run_id)
                    recovering = False
                await self.admit()
                streams: dict[Any, Any] = {self._keys.wake: format_id(wake_cursor)}
                if not self.cursors and self.announce_cursor is None:
                    self._notice_seq = None  # following nothing: no notices to read
                else:
                    if self._notice_seq is None:
                        await self._catch_up_notices()
                    streams[self._keys.notices] = format_id(self._notice_cursor)
                if self.announce_cursor is not None:
                    streams[self._keys.announce] = format_id(self.announce_cursor)
                # Block only with nothing left to read: topics still `due` come first.
                block = None if self._due else self._block_ms
                reply: Any = await self._redis.xread(
                    streams, count=_NOTICES_PER_READ, block=block
                )
                backoff.reset()
            except UNAVAILABLE as exc:
                recovering = True
                await asyncio.sleep(backoff.next(exc))
                continue
            announced: list[_Entry] = []
            batch: list[_Entry] = []
            for key, rows in reply or ():  # RESP2: [[key, [(id, fields), ...]], ...]
                name = key.decode()
                if name == self._keys.wake:
                    wake_cursor = position_of(rows[-1][0])
                elif name == self._keys.announce:
                    announced.extend(entries(rows, ""))
                else:
                    batch.extend(self._noticed(rows))
            try:
                if announced:
                    # A new topic's first entries may be older than what this round reads of
                    # other topics: read them up to the newest noticed, so delivery stays in
                    # id order.
                    limit = max(entry[0] for entry in announced)
                    batch.extend(await self.discover(announced, max(limit, self._notice_cursor)))
                    self.announce_cursor = announced[-1][0]
                batch.extend(await self.read_due())
            except UNAVAILABLE:
                recovering = True  # `recover` reads every followed topic again
            self.deliver(batch)

    def _noticed(self, rows: Any) -> list[_Entry]:
        """The entries of followed topics among notices `rows`, to deliver as they are.

        A topic that is due is read from its stream instead (`read_due`): its entries before
        these may not have been delivered yet.
        """
        found: list[_Entry] = []
        cursors, due = self.cursors, self._due
        for id, fields in rows:
            position = position_of(id)
            if self._notice_seq is not None and position[1] != self._notice_seq + 1:
                # The sequence skipped: notices were trimmed before this reader read them (or
                # Redis lost its data). Which topics they named is unknown: read them all.
                due.update(dict.fromkeys(cursors))
                found.clear()
            self._notice_cursor = position
            self._notice_seq = position[1]
            topic = fields[b"n"].decode()
            if topic in cursors and topic not in due:
                found.append((position, topic, fields))
        return found

    async def read_due(self) -> list[_Entry]:
        """Read what the topics `due` hold after their cursors: a bounded batch, in turns.

        At most `_TOPICS_PER_READ` topics and about `_ENTRIES_PER_READ` entries in one read;
        a topic that filled its share stays due, behind the others, so a busy topic cannot
        hold up a quiet one.
        """
        due = self._due
        if not due:
            return []
        turn = list(itertools.islice(due, _TOPICS_PER_READ))
        for topic in turn:
            del due[topic]
        count = max(_MIN_PER_TOPIC, _ENTRIES_PER_READ // len(turn))
        key = self._keys.topic
        streams: dict[Any, Any] = {key(t): format_id(self.cursors[t]) for t in turn}
        try:
            reply: Any = await self._redis.xread(streams, count=count)
        except BaseException:
            due.update(dict.fromkeys(turn))  # read them next time
            raise
        found: list[_Entry] = []
        for name, rows in reply or ():
            topic = self._keys.topic_of(name)
            if len(rows) >= count:
                due[topic] = None  # more to read: after the others
            found.extend(entries(rows, topic))
        return found

    async def recover(self, run_id: str | None) -> str:
        """After (re)connecting: report a gap on topics whose next events Redis lost."""
        info = await self._redis.info("server")
        new_run_id = str(info["run_id"])
        for topic, cursor in list(self.cursors.items()):
            if cursor == ORIGIN:
                continue
            key = self._keys.topic(topic)
            lost = False
            if run_id is not None and new_run_id != run_id:
                # A restarted Redis kept our last entry only if it persisted the stream.
                lost = not await self._redis.xrange(
                    key, format_id(cursor), format_id(cursor)
                )
            if not lost:
                with contextlib.suppress(ResponseError):
                    stream = await self._redis.xinfo_stream(key)
                    first = stream.get("first-entry")
                    trimmed = int(stream["entries-added"]) > int(stream["length"])
                    lost = trimmed and first is not None and cursor < position_of(first[0])
            if lost:
                self.deliver_gap(topic, gap_event("expired", format_id(cursor)))
        await self._catch_up_notices()
        return new_run_id

    async def _catch_up_notices(self) -> None:
        """Read notices from here on, and every followed topic up to here from its stream."""
        last = entries(await self._redis.xrevrange(self._keys.notices, count=1), "")
        if last:
            self._notice_cursor = last[0][0]
            self._notice_seq = self._notice_cursor[1]
        else:  # none kept: the next one follows the last event issued
            self._notice_cursor = ORIGIN
            self._notice_seq = int(await self._redis.hget(self._keys.clock, "n") or 0)
        self._due.update(dict.fromkeys(self.cursors))

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
            rows = await self._redis.xrange(
                self._keys.topic(topic), f"({format_id(start)}", format_id(limit)
            )
            found.extend(entries(rows, topic))
        return found

    async def admit(self) -> None:
        """Attach resolved joiners, replaying what they need before following live."""
        with self._fanout.lock:
            ready = self._take_ready()
            followed, everything = self._fanout.followed()
        everything = everything or any(j.subscription.topics is None for j in ready)
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
                self._due.pop(topic, None)
        for joiner in ready:
            subscription = joiner.subscription
            if subscription.closed:
                continue
            if subscription.topics is None:
                await self._catch_up_announcements(joiner)
            replay: list[_Entry] = []
            for topic, start in joiner.start.items():
                key = self._keys.topic(topic)
                cursor = self.cursors.get(topic)
                if cursor is None:
                    self.cursors[topic] = start
                    if start < self._notice_cursor:  # notices after it may have gone by
                        self._due[topic] = None
                    if topic in joiner.counts:
                        self._counts[topic] = joiner.counts[topic]
                    continue
                if cursor < start:  # catch current followers up to the newcomer's start
                    rows = await self._redis.xrange(
                        key, f"({format_id(cursor)}", "+"
                    )
                    self.deliver(entries(rows, topic))
                    cursor = max(self.cursors[topic], start)
                    self.cursors[topic] = cursor
                if start < cursor:
                    rows = await self._redis.xrange(
                        key, f"({format_id(start)}", format_id(cursor)
                    )
                    replay.extend(entries(rows, topic))
            replay.sort(key=lambda entry: entry[0])
            events = [_event(position, topic, fields) for position, topic, fields in replay]
            waiters: list[asyncio.Future[None]] = []
            with self._fanout.lock:
                if subscription.resume(joiner.gap, events, waiters):
                    topics = None if subscription.topics is None else joiner.start
                    self._fanout.attach(subscription, topics)
            wake(waiters)

    async def _catch_up_announcements(self, joiner: Joiner) -> None:
        """Make the reader know every topic a new subscription to all of them must follow."""
        start = joiner.announce_start
        cursor = self.announce_cursor
        if cursor is None:
            self.announce_cursor = start
        elif cursor < start:  # announced before the newcomer looked: existing topics now
            rows = await self._redis.xrange(
                self._keys.announce, f"({format_id(cursor)}", format_id(start)
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
        self._next_prune = now + self._replay_seconds
        horizon = int(time.time() * 1000 - self._replay_seconds * 1000)
        names = await self._redis.zrangebyscore(
            self._keys.registry, horizon, "+inf"
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
        with self._fanout.lock:
            for position, topic, fields in entries:
                previous = self.cursors.get(topic, ORIGIN)
                if position <= previous:
                    continue  # read already (a catch-up overlapping a blocking read)
                self.cursors[topic] = position
                followers = self._fanout.followers(topic)
                count, last = int(fields.get(b"c", 0)), self._counts.get(topic)
                self._counts[topic] = count
                if last is not None and count > last + 1:
                    # This reader fell further behind than the stream's retention.
                    gap = gap_event("expired", format_id(previous), count - last - 1)
                    push_all(followers, gap, waiters)
                push_all(followers, _event(position, topic, fields), waiters)
        wake(waiters)

    def deliver_gap(self, topic: str, gap: Event) -> None:
        waiters: list[asyncio.Future[None]] = []
        with self._fanout.lock:
            push_all(self._fanout.followers(topic), gap, waiters)
        wake(waiters)


def _before(position: Position) -> Position:
    """The id just before `position`: reading after it starts at `position`."""
    ms, seq = position
    return (ms, seq - 1) if seq else (ms - 1, 2**64 - 1)


def _event(position: Position, topic: str, fields: dict[bytes, bytes]) -> Event:
    return Event(fields[b"t"].decode(), orjson.loads(fields[b"d"]), format_id(position), topic)


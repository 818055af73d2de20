"""`RedisBroker`: the broker for several server processes, on Redis Streams.

```python
from chronos.stream.redis import RedisBroker

async with RedisBroker("redis://127.0.0.1:6379/0") as broker:
    app = Starlette(routes=[Route("/sessions/{topic}/events", broker.sse_handler())])
```

Same interface and semantics as the in-process `stream.Broker`, so the same contract tests run
on both. Each topic is one Redis stream (`<key_prefix>t:<topic>`), trimmed to about
`replay_events` entries (`XADD MAXLEN ~`) and to `replay_seconds` of age (`XTRIM MINID ~`, and
the key expires when the topic goes quiet). Event ids are the Redis entry ids, so a client's
`Last-Event-ID` means the same thing on every process.

Per process there are two tasks and two connections, however many subscribers there are:

- the *writer* drains a bounded outbox. `publish` only appends to it under a lock (never
  blocks, any thread); the writer sends everything pending in one pipeline. It also resolves
  where new subscriptions start (the stream's last id, read *before* the events published after
  `subscribe` returned are written, so none of them can be missed).
- the *reader* blocks on one stream of *notices* (a copy of every event with its topic's
  name, written with the event) and delivers those of the topics it follows, up to 1,024 a
  read, in the order Redis ran the publishes. Its cost follows what is published, not how
  many topics are followed, and a busy topic holds up a quiet one by its place in that order
  only. It fans the entries out to bounded per-subscriber buffers (the in-process broker's
  subscriptions, with the same overflow `GAP` policy). A new subscription wakes it by
  appending to a private wake-up stream. Redis keeps about 4,096 notices (their events' size
  each); a reader further behind than that (it sees their sequence skip) reads every topic
  it follows from its own stream, in turns of at most 256 topics and about 4,096 entries.

Redis going away. Publishers: events wait in the outbox (`max_outbox`, default 10,000) and are
written, in order, once Redis answers again; when it is full `publish` raises
`BrokerUnavailable` and nothing is queued. A graph run publishing to the broker therefore
carries on through a short outage (its events are delivered when Redis is back) and fails
with `BrokerUnavailable` in a long one; it never loses events quietly. A batch whose reply
was lost with the connection is sent again, so delivery across an outage is at least once.
Subscribers stay open: the reader reconnects with capped exponential backoff and reads on from
the last id it delivered. If Redis lost that entry meanwhile (a restart without persistence)
or trimmed past it, the subscribers get a `GAP` event (`reason="expired"`) first: what Redis
still holds is delivered, what it does not is reported. The same goes for a client resuming
with `Last-Event-ID` later: an id from before Redis's data began (its *epoch*, recorded when
a broker first reaches it after a start or a restart that lost everything), or older than the
retention and not found, is answered with that `GAP` first, since nothing proves the events after it
are all still there.

Every topic (`subscribe(id)`, `topics=None`): publishers keep a registry of live topics (a
sorted set) and announce each topic's first event on a stream of topic names; the reader then
follows every live topic and each new one from its first event, so nothing is missed. Each
topic's events come in order; a topic that begins while others are streaming may come a
little behind them. Such a reader follows every live topic: a catch-up after an outage reads
each of them, so this suits deployments with up to some thousands of concurrent topics.

Slow subscribers: the in-process broker's policies (`overflow="drop_oldest"` with a `GAP`
event, or `"disconnect"`). The broker belongs to the event loop that first uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from chronos.errors import BrokerError, BrokerUnavailable
from chronos.stream._broker import Fanout
from chronos.stream._event import DEFAULT_TOPIC, Event, encode_json, gap_event
from chronos.stream._ids import format_id, parse_id
from chronos.stream._protocol import Overflow, Subscription
from chronos.stream._subscription import wake

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "chronos.stream.redis needs the redis package: pip install 'chronos-stream[redis]'"
    ) from exc

from chronos.stream._redis_read import (  # after redis: it needs the package too
    NOTICES_KEPT,
    ORIGIN,
    Backoff,
    Joiner,
    Keys,
    Reader,
    entries,
    position_of,
    text,
)

__all__ = ["RedisBroker"]

# XADD with an id of our own: Redis's clock in ms, then a sequence shared by every topic. Auto
# ids (`*`) restart their sequence in every stream, so two topics could issue the same id and a
# subscription to both could not resume after it. Ours are unique across topics and increase
# in the order Redis ran the publishes (the ms never goes back, even if Redis's clock does).
# Each entry also carries `c`, its number within the topic, so a reader that fell further
# behind than the stream's retention can tell how many it missed. Keys expire together when
# the topic has been quiet for `replay_seconds`. For subscriptions to every topic, a topic's
# first event (new, or back after expiring) registers it in a sorted set scored by time and
# announces it, under its own id, on a stream of topic names: in one step with its XADD, so a
# subscription to every topic, which reads that stream's end and then the set, cannot miss a
# topic born in between. The writer refreshes the scores once a second, not every event.
# The clock's `epoch` is when a broker first found Redis's data without a clock (a first
# start, or a restart that lost everything): when its writer first reached Redis (`_CLAIM`,
# again after every error, since a restart is only seen as one), else at the first id. Every
# id of this epoch has ms at or after it (the epoch is the floor of the first), so an older
# id is from data that is gone, and resuming after it needs a gap. Claimed when a broker
# starts, it is before what happens next: a position made from this host's clock since then
# (a join's "from the run's creation on") is no older than the epoch, though the first id
# may be, and needs no gap.
# Every event is also copied, under its own id and with its topic's name, to one stream of
# *notices* (about NOTICES_KEPT long): readers block on that stream alone and deliver what
# they follow from it, so a reader's cost follows what is published, not how many topics
# its subscribers follow. The sequence `n` is shared by every topic, so a reader that sees
# it skip knows notices were trimmed before it read them.
_XADD: Final = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[2], 'ms') or redis.call('HGET', KEYS[2], 'epoch')
                     or '0')
if ms < last then ms = last end
redis.call('HSET', KEYS[2], 'ms', string.format('%.0f', ms))
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
if n == 1 then redis.call('HSETNX', KEYS[2], 'epoch', string.format('%.0f', ms)) end
local id = string.format('%.0f', ms) .. '-' .. string.format('%.0f', n)
local c = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 't', ARGV[2], 'd', ARGV[3], 'c', c)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if c == 1 then
  redis.call('ZADD', KEYS[4], string.format('%.0f', ms), ARGV[5])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', '1000', id, 't', ARGV[5])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], id,
           'n', ARGV[5], 't', ARGV[2], 'd', ARGV[3], 'c', c)
redis.call('PEXPIRE', KEYS[6], ARGV[4])
return id
"""
# The epoch of a clock not there yet. A clock with ids but no epoch (from before epochs) gets
# none: its ids would be older than one set now.
_CLAIM: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'epoch', string.format('%.0f', ms))
end
return 0
"""


class RedisBroker(Fanout):
    """An event broker on Redis Streams, shared by every process that uses the same Redis.

    ```python
    broker = RedisBroker("redis://127.0.0.1:6379/0")
    async with broker.subscribe("client-123", ["session-1"]) as subscription:
        broker.publish(stream.Event("node_end", {"node": "extract"}), topic="session-1")
        async for event in subscription:
            print(event.id, event.type, event.data)   # id: the Redis entry id
    await broker.aclose()
    ```

    Args:
        url: a redis-py URL (`redis://`, `rediss://`, `unix://`).
        key_prefix: prefix of the stream keys, one per topic.
        max_pending: each subscriber's buffer; on overflow it gets a `GAP` event.
        replay_events: about how many events each topic's stream keeps (`MAXLEN ~`).
        replay_seconds: how long events are kept for resuming.
        max_outbox: events `publish` may hold while Redis is slow or away.
        block_seconds: how long one blocking read waits before it is issued again.
        clock_skew: how far this host's clock may be from Redis's. A new subscription starts
            that long before `subscribe` was called (or at the stream's end, if earlier), so
            an event another process publishes just after it returns cannot be missed; it
            may receive events from that moment before, too.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "chronos:stream:",
        max_pending: int = 1024,
        replay_events: int = 1024,
        replay_seconds: float = 300.0,
        max_outbox: int = 10_000,
        block_seconds: float = 5.0,
        clock_skew: float = 0.1,
    ) -> None:
        if min(max_pending, replay_events, max_outbox) < 1 or replay_seconds <= 0:
            raise ValueError("broker limits must be positive")
        super().__init__()  # the registry; `_lock` also guards the outbox and joiners below
        self.url = url
        self.key_prefix = key_prefix
        self.max_pending = max_pending
        self.replay_events = replay_events
        self.replay_seconds = replay_seconds
        self.max_outbox = max_outbox
        self._skew_ms = max(0, int(clock_skew * 1000))
        # Separate clients: the reader's connection spends its life inside XREAD BLOCK.
        timeout = block_seconds + 10.0
        self._writer_redis = aioredis.Redis.from_url(url, socket_timeout=timeout)
        self._reader_redis = aioredis.Redis.from_url(url, socket_timeout=timeout)
        self._keys = keys = Keys(key_prefix)
        self._registry_trimmed = 0.0
        self._xadd_sha = hashlib.sha1(_XADD.encode()).hexdigest()
        # Script loaded and epoch claimed (`_reach`); again after an error: a restart forgets
        # scripts, and one without persistence the clock.
        self._reached = False
        self._outbox: deque[tuple[str, bytes, bytes]] = deque()
        self._joining: list[Joiner] = []  # waiting for the writer to resolve their start
        self._ready: list[Joiner] = []  # resolved, waiting for the reader to admit them
        self._reader = Reader(
            self,
            self._reader_redis,
            keys,
            block_ms=max(1, int(block_seconds * 1000)),
            replay_seconds=replay_seconds,
            take_ready=self._take_ready,
        )
        self._trimmed: dict[str, float] = {}  # writer only: when MINID last ran per topic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _take_ready(self) -> list[Joiner]:
        """The subscriptions resolved by the writer, for the reader to admit. Lock held."""
        ready, self._ready = self._ready, []
        return ready

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBroker:
        """`RedisBroker(url, **options)`, for symmetry with `stream.broker_from_url`."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<RedisBroker prefix={self.key_prefix!r} subscriptions={len(self._subscriptions)}>"

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> RedisBroker:
        self._start(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the reader and writer on `loop`, once. Lock held or on that loop."""
        if self._loop is not None:
            return
        self._loop = loop
        self._work = asyncio.Event()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._reader.read())]
        if self._outbox:
            self._work.set()

    def _start_here(self) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):  # no loop in this thread: start later
                self._start(asyncio.get_running_loop())

    def _signal(self) -> None:
        """Wake the writer, from any thread. Lock not held."""
        loop, work = self._loop, self._work
        if loop is None or work is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            work.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed: aclose already ran
                loop.call_soon_threadsafe(work.set)

    async def aclose(self) -> None:
        """End every subscription, write what is still queued (for up to 5 s), disconnect."""
        with self._lock:
            already, self._closed = self._closed, True
            waiters = [self._remove(s) for s in list(self._subscriptions.values())]
        wake([w for w in waiters if w is not None])
        if already:
            return
        if self._tasks:
            writer, reader = self._tasks
            self._signal()  # the writer returns once the outbox is empty (or Redis is away)
            await asyncio.wait([writer], timeout=5.0)
            # Stop the reader through Redis: redis-py may retry a blocking read it was
            # cancelled in, so cancelling is only the fallback when Redis is away.
            with contextlib.suppress(RedisError, OSError):
                await self._writer_redis.xadd(self._keys.wake, {b"w": b"1"}, maxlen=1)
                await self._writer_redis.delete(self._keys.wake)
            await asyncio.wait([reader], timeout=1.0)
            for task in (writer, reader):
                task.cancel()
            await asyncio.wait([writer, reader], timeout=5.0)
        await self._writer_redis.aclose()
        await self._reader_redis.aclose()

    # -- publishing ----------------------------------------------------------------------

    def publish(self, event: Event, topic: str | None = None) -> None:
        """Queue `event` for `topic` (default: `event.topic`, else `stream.DEFAULT_TOPIC`).

        Never blocks; safe from any thread and from synchronous code. The event gets its id
        from Redis when the writer sends it, a moment later. The writer runs on the event
        loop that first used the broker: start it there (`async with broker:`) before
        publishing only from threads, or the events wait in the outbox.

        Raises:
            EventNotSerializable: `event.data` holds something JSON cannot carry (nothing is
                queued). It is also a TypeError.
            BrokerUnavailable: `max_outbox` events are waiting because Redis is unreachable.
            BrokerError: the broker is closed.
        """
        if topic is None:
            topic = event.topic if event.topic is not None else DEFAULT_TOPIC
        data = encode_json(event.data)
        self._start_here()
        with self._lock:
            if self._closed:
                raise BrokerError("the broker is closed")
            if len(self._outbox) >= self.max_outbox:
                raise BrokerUnavailable(
                    f"Redis is unreachable and {self.max_outbox} events are waiting"
                )
            self._outbox.append((topic, event.type.encode(), data))
        self._signal()

    async def _write(self) -> None:
        assert self._work is not None
        backoff = Backoff("redis broker writer")
        wake = False  # resolved joiners are waiting for the reader to notice them
        while True:
            await self._work.wait()
            self._work.clear()
            while True:
                with self._lock:
                    joiners, self._joining = self._joining, []
                    batch = [self._outbox[i] for i in range(min(512, len(self._outbox)))]
                    closed = self._closed
                if not joiners and not batch:
                    if closed:
                        return
                    break
                try:
                    if not self._reached:
                        await self._reach()
                    for joiner in joiners:
                        await self._resolve(joiner)
                    if joiners:
                        with self._lock:
                            self._ready.extend(joiners)
                        joiners, wake = [], True
                    await self._send(batch, wake)
                    wake = False
                except (RedisError, OSError) as exc:
                    # Unreachable, restarted (scripts forgotten) or refusing: keep the batch
                    # and retry; the bounded outbox turns a lasting failure into
                    # BrokerUnavailable for publishers.
                    self._reached = False
                    with self._lock:
                        self._joining[:0] = joiners
                    if closed:
                        return
                    await asyncio.sleep(backoff.next(exc))
                    continue
                backoff.reset()
                with self._lock:
                    for _ in batch:
                        self._outbox.popleft()

    async def _reach(self) -> None:
        """Load the publish script and claim the clock's epoch, if Redis has no clock."""
        await self._writer_redis.script_load(_XADD)
        await self._writer_redis.eval(_CLAIM, 1, self._keys.clock)
        self._reached = True

    async def _send(self, batch: list[tuple[str, bytes, bytes]], wake: bool) -> None:
        now = time.monotonic()
        # MULTI/EXEC: Redis answers blocked XREADs after a command, and a transaction is one
        # command, so every reader gets the batch in one reply and each SSE client one write
        # per batch (a plain pipeline woke them after its first XADD: two fan-outs a burst).
        pipe = self._writer_redis.pipeline(transaction=True)
        ttl = int(self.replay_seconds * 1000)
        touched: set[str] = set()
        keys = self._keys
        for topic, type_, data in batch:
            pipe.evalsha(
                self._xadd_sha,
                6,
                keys.topic(topic),
                keys.clock,
                keys.count(topic),
                keys.registry,
                keys.announce,
                keys.notices,
                self.replay_events,
                type_,
                data,
                ttl,
                topic,
                NOTICES_KEPT,
            )
            touched.add(topic)
        if len(self._trimmed) > 10_000:  # remembers recent topics only: bounded memory
            self._trimmed.clear()
        now_ms = int(time.time() * 1000)
        cutoff = now_ms - ttl
        for topic in touched:
            if now - self._trimmed.get(topic, 0.0) >= 1.0:  # age trimming, once a second
                self._trimmed[topic] = now
                pipe.xtrim(keys.topic(topic), minid=f"{cutoff}-0", approximate=True)
                pipe.zadd(keys.registry, {topic: now_ms})
        if touched and now - self._registry_trimmed >= 1.0:  # topics whose keys expired
            self._registry_trimmed = now
            pipe.zremrangebyscore(keys.registry, 0, cutoff)
        if wake:  # the reader may be blocked in XREAD on topics the joiners do not follow
            pipe.xadd(keys.wake, {b"w": b"1"}, maxlen=1, approximate=False)
            pipe.pexpire(keys.wake, 600_000)
        await pipe.execute()

    async def _resolve(self, joiner: Joiner) -> None:
        """Decide where each of the joiner's topics starts, and whether a gap comes first."""
        topics = joiner.subscription.topics
        horizon = int(time.time() * 1000 - self.replay_seconds * 1000)
        if topics is None:  # every topic: those alive now, then those announced from here
            rows = await self._writer_redis.xrevrange(self._keys.announce, count=1)
            announced = entries(rows, "")
            joiner.announce_start = announced[0][0] if announced else ORIGIN
            names = await self._writer_redis.zrangebyscore(self._keys.registry, horizon, "+inf")
            topics = frozenset(text(name) for name in names)
        after = joiner.after
        reasons: set[str] = set()
        if after is not None:
            ms, n, epoch = await self._writer_redis.hmget(self._keys.clock, ["ms", "n", "epoch"])
            if (ms is None and epoch is None) or (epoch is not None and after[0] < int(epoch)):
                # Issued before Redis's data began (it restarted and lost it, or never held
                # this id): whatever followed it is gone. Say so, then replay what it holds.
                reasons.add("expired")
            elif after > (int(ms or 0), int(n or 0)):
                # An id Redis never issued: say so, then follow live, as the in-process
                # broker does (starting at it would skip everything until Redis's clock
                # caught up with it).
                joiner.gap = gap_event("unknown", format_id(after))
                after = None
        if after is None:
            ordered = list(topics)
            pipe = self._writer_redis.pipeline(transaction=False)  # one round trip for all
            for topic in ordered:
                pipe.xrevrange(self._keys.topic(topic), count=1)
            # Another process may have published after `subscribe` returned but before this
            # lookup: start no later than `clock_skew` before the call.
            since = (max(0, joiner.since_ms - self._skew_ms), 0)
            for topic, rows in zip(ordered, await pipe.execute(), strict=True):
                last = entries(rows, topic)
                start = min(last[0][0], since) if last else ORIGIN
                joiner.start[topic] = start
                if not last or start == last[0][0]:
                    # The number of the entry it starts at, so that a reader falling behind
                    # the retention before its first read still counts what it missed.
                    joiner.counts[topic] = int(last[0][2].get(b"c", 0)) if last else 0
            return
        newest = ORIGIN
        ordered = list(topics)
        # One round trip for every topic: the writer resolves joiners before it sends the
        # events waiting in the outbox, so a resume to many topics must not hold them up.
        pipe = self._writer_redis.pipeline(transaction=False)
        for topic in ordered:
            pipe.xinfo_stream(self._keys.topic(topic))
        answers = await pipe.execute(raise_on_error=False)
        for topic, info in zip(ordered, answers, strict=True):
            # Never past what the stream holds: everything added from here on is new, and
            # the start moves the reader's cursor shared by every follower of the topic in
            # this process, so an id from the future would silence all of them.
            joiner.start[topic] = ORIGIN
            if isinstance(info, ResponseError):  # no such stream
                if after[0] < horizon:
                    reasons.add("expired")  # events after it, if any, have aged out
                continue
            if isinstance(info, Exception):
                raise info
            issued = position_of(info["last-generated-id"])
            joiner.start[topic] = min(after, issued)
            newest = max(newest, issued)
            first = info.get("first-entry")
            trimmed = int(info["entries-added"]) > int(info["length"])
            # Trimming keeps no record of where it cut, only that it did: an id before the
            # first entry left may have missed something, so say so. So may one older than
            # the retention: the stream may have expired and been created anew since.
            before_first = first is None or after < position_of(first[0])
            if before_first and (trimmed or after[0] < horizon):
                reasons.add("expired")
        if joiner.subscription.topics is None and after[0] < horizon:
            reasons.add("expired")  # topics that went quiet since have expired entirely
        if newest < after and not reasons and after[0] > time.time() * 1000 + 1000:
            reasons.add("unknown")  # from the future, and Redis forgot what it issued
        if reasons:
            reason = "expired" if "expired" in reasons else "unknown"
            joiner.gap = gap_event(reason, format_id(after))

    # -- subscribing ---------------------------------------------------------------------

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
        """Open subscription `id` to `topics` (None: every topic), live or resuming after an id.

        ```python
        subscription = broker.subscribe("client-123", ["session-1"], last_event_id="1732-0")
        ```

        Events published after this call returns are delivered, by this process or any other
        (call it from the broker's event loop, or start the broker first with `async with`).
        `max_pending` and `overflow` are as for `stream.Broker.subscribe`.

        Raises:
            SubscriptionExists: `id` is open already and `replace` is False.
            InvalidLastEventID: `last_event_id` is not a Redis stream id.
            BrokerError: the broker is closed.
        """
        after = parse_id(last_event_id) if last_event_id is not None else None
        self._start_here()
        with self._lock:
            subscription, waiter = self._open(
                id, topics, replace=replace, max_pending=max_pending, overflow=overflow
            )
            # The writer resolves where it starts, the reader attaches it: see `Joiner`.
            self._joining.append(Joiner(subscription, after))
        if waiter is not None:
            wake([waiter])
        self._signal()
        return subscription

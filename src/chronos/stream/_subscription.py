"""The in-process broker's subscription: a bounded buffer, gap markers, one waiter; and
`MissedEvents`, how every bounded reader (this subscription, the graph's local `EventStream`
with a buffer) counts what did not fit and tells its reader with one `GAP` marker.

Every field is guarded by the broker's lock, which is shared with the publisher: publishing
appends to `_pending` (when full, dropping the oldest, or under the "disconnect" policy taking
no more events from then on) and takes `_waiter` to wake it; reading takes everything ready in one
go. The waiter is an asyncio future of the reader's loop, so a publisher on another thread
wakes it with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from chronos.errors import SubscriptionOverflow
from chronos.stream._event import Event, gap_event
from chronos.stream._protocol import Overflow, SubscriptionStatistics

__all__ = ["LocalSubscription", "MissedEvents", "push_all", "wake"]


def wake(waiters: Iterable[asyncio.Future[None]]) -> None:
    """Wake the readers waiting on `waiters`, from any thread. Lock not held.

    Waiters of this thread's running loop are woken at once; those of other loops with one
    `call_soon_threadsafe` per loop, however many of its readers there are.
    """
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    elsewhere: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        loop = waiter.get_loop()
        if loop is running:
            _resolve([waiter])
        else:
            elsewhere.setdefault(loop, []).append(waiter)
    for loop, group in elsewhere.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
            loop.call_soon_threadsafe(_resolve, group)


def _resolve(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def push_all(
    subscriptions: Iterable[LocalSubscription], event: Event, waiters: list[asyncio.Future[None]]
) -> None:
    """`_push` `event` to each of `subscriptions`, adding the waiters to wake. Lock held."""
    # A publish runs this once per subscriber (100,000 times for 100 events to 1,000): the
    # common case of `_push` is inline, which halves its cost.
    for subscription in subscriptions:
        pending = subscription._pending
        if len(pending) < subscription._max_pending and not subscription._overflowed:
            pending.append(event)
            waiter = subscription._waiter
            if waiter is not None:
                subscription._waiter = None
                waiters.append(waiter)
        elif (waiter := subscription._push(event)) is not None:
            waiters.append(waiter)


class MissedEvents:
    """What a bounded reader missed since it was last told, and the `GAP` marker that tells it.

    ```python
    missed = MissedEvents()
    missed.add("1732460000000-3")   # an event that did not fit: counted, not kept
    if missed.count:
        marker = missed.gap()       # data {"reason": "overflow", "missed": 1, "first_id": ...}
    ```

    The one place an overflow gap is counted and built: a broker's subscriptions (which drop
    their oldest pending events) and the graph's bounded local readers (which miss the newest)
    use it, so every reader that fell behind is told the same way. Not thread-safe: its owner
    guards it as it guards its buffer.
    """

    __slots__ = ("count", "first_id", "last_id")

    def __init__(self) -> None:
        self.count = 0  # missed since the last gap marker
        self.first_id = ""
        self.last_id = ""

    def add(self, id: str) -> None:
        """Count one missed event, `id` naming it (ids of one reader increase)."""
        if not self.count:
            self.first_id = id
        self.count += 1
        self.last_id = id

    def gap(self) -> Event:
        """The marker for what was missed, with the last missed id as its own (a reader that
        resumes after it misses nothing more); counting starts again from zero."""
        last = self.last_id
        marker = gap_event("overflow", last, self.count, self.first_id, last)
        self.count = 0
        return marker


class LocalSubscription:
    """`Subscription` of the in-process broker. The broker's lock guards every field."""

    __slots__ = (
        "_closed",
        "_deadline",
        "_delivered",
        "_disconnect",
        "_dropped_total",
        "_gap",
        "_last_id",
        "_lock",
        "_max_pending",
        "_missed",
        "_on_close",
        "_overflowed",
        "_pending",
        "_timer",
        "_timer_loop",
        "_waiter",
        "id",
        "topics",
    )

    def __init__(
        self,
        lock: threading.Lock,
        on_close: Callable[[LocalSubscription], None],
        id: str,
        topics: frozenset[str] | None,
        max_pending: int,
        overflow: Overflow = "drop_oldest",
    ) -> None:
        if overflow not in ("drop_oldest", "disconnect"):
            raise ValueError(f"overflow must be 'drop_oldest' or 'disconnect', not {overflow!r}")
        self._lock = lock
        self._on_close = on_close
        self.id = id
        self.topics = topics
        self._max_pending = max_pending
        # A list, not a deque: an empty list is a tenth of the size, and there is one per
        # subscriber; dropping its oldest (on overflow only) moves at most `max_pending` slots.
        self._pending: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None
        # `receive_batch`'s timeout: the reader's only (never touched by publishers).
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._disconnect = overflow == "disconnect"
        self._overflowed = False  # full under the "disconnect" policy: takes no more events
        self._last_id: str | None = None  # of the last event read: where to resume
        self._gap: Event | None = None  # a resume gap, delivered before anything else
        self._missed = MissedEvents()  # dropped since the last overflow gap was delivered
        self._dropped_total = 0
        self._delivered = 0

    def __repr__(self) -> str:
        return f"<Subscription {self.id!r} topics={self.topics!r} closed={self._closed}>"

    @property
    def closed(self) -> bool:
        return self._closed or self._overflowed

    def _push(self, event: Event) -> asyncio.Future[None] | None:
        """Append a published event; return the waiter to wake, if any. Lock held."""
        pending = self._pending
        if len(pending) >= self._max_pending or self._overflowed:
            if self._disconnect:
                # Keep what is pending, a gapless run the reader still gets; then it ends.
                self._overflowed = True
                self._dropped_total += 1
                return None
            self._missed.add(pending.pop(0).id or "")
            self._dropped_total += 1
        pending.append(event)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
        return waiter

    def resume(
        self, gap: Event | None, events: Iterable[Event], waiters: list[asyncio.Future[None]]
    ) -> bool:
        """Queue a resume: its `gap` marker, if any, first, then the replayed `events`.

        Adds the waiter to wake to `waiters`. Returns False, queueing nothing, if the
        subscription was closed meanwhile. Lock held.
        """
        if self._closed:
            return False
        self._gap = gap
        for event in events:
            if (waiter := self._push(event)) is not None:
                waiters.append(waiter)
        if gap is not None and self._waiter is not None:
            waiters.append(self._waiter)
            self._waiter = None
        return True

    def _take(self, max_events: int) -> list[Event]:
        """Remove and return up to `max_events` ready events, gap markers first. Lock held."""
        batch: list[Event] = []
        if self._gap is not None:
            batch.append(self._gap)
            self._gap = None
        if self._missed.count and len(batch) < max_events:
            batch.append(self._missed.gap())
        room = max_events - len(batch)
        pending = self._pending
        if not batch and len(pending) <= room:
            batch = pending  # the usual case: everything, handed over without a copy
            self._pending = []
        elif len(pending) <= room:
            batch.extend(pending)
            pending.clear()
        elif room > 0:
            batch.extend(pending[:room])
            del pending[:room]
        self._delivered += len(batch)
        if batch:
            self._last_id = batch[-1].id
        return batch

    def __aiter__(self) -> LocalSubscription:
        return self

    async def __anext__(self) -> Event:
        batch = await self.receive_batch(1)
        if not batch:
            raise StopAsyncIteration
        return batch[0]

    async def receive_batch(
        self, max_events: int = 1024, timeout: float | None = None
    ) -> list[Event]:
        max_events = max(1, max_events)
        lock = self._lock
        deadline: float | None = None
        while True:
            with lock:
                if self._closed:
                    return []
                if self._pending or self._gap is not None or self._missed.count:
                    return self._take(max_events)
                if self._overflowed:
                    raise SubscriptionOverflow(self.id, self._last_id)
                if deadline is not None:  # woken by the timer, not by an event
                    return []
                loop = asyncio.get_running_loop()
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiter = waiter
            if timeout is None:
                self._deadline = math.inf
            else:
                deadline = self._deadline = loop.time() + timeout
                # One timer that outlives the waits, not one per wait (created, then cancelled
                # by the event that came first): this runs once per wake-up of every subscriber.
                timer = self._timer
                if timer is None or self._timer_loop is not loop or timer.when() > deadline:
                    if timer is not None and self._timer_loop is loop:
                        timer.cancel()  # a shorter timeout than the last
                    self._timer_loop = loop
                    self._timer = loop.call_at(deadline, self._expire)
            try:
                await waiter
            finally:
                # Woken by an event, the waiter is gone already (the publisher took it);
                # otherwise (timer, cancellation) it is withdrawn. Only the reader sets it,
                # so checking before taking the lock is safe.
                if self._waiter is waiter:
                    with lock:
                        if self._waiter is waiter:
                            self._waiter = None

    def _expire(self) -> None:
        """The timer of `receive_batch`: wake the reader once its deadline has passed."""
        loop = self._timer_loop
        if loop is not asyncio.get_running_loop():
            return  # a timer of a loop this subscription is no longer read from
        self._timer = None
        deadline = self._deadline
        with self._lock:
            waiter = self._waiter
            if waiter is None or deadline == math.inf:
                return  # not waiting with a deadline: the next such wait arms a timer
            if loop.time() < deadline:  # a later wait: its deadline is later
                self._timer = loop.call_at(deadline, self._expire)
                return
            self._waiter = None
        _resolve([waiter])  # on its own loop: this is the loop's timer

    def statistics(self) -> SubscriptionStatistics:
        with self._lock:
            return SubscriptionStatistics(
                pending=len(self._pending),
                max_pending=self._max_pending,
                delivered=self._delivered,
                dropped=self._dropped_total,
            )

    async def aclose(self) -> None:
        self._on_close(self)
        timer = self._timer
        if timer is not None and self._timer_loop is asyncio.get_running_loop():
            timer.cancel()  # it would keep the subscription alive until it fires
            self._timer = None

    async def __aenter__(self) -> LocalSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

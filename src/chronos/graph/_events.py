"""`StreamEvent` and the per-run hub that fans events out to subscribers and a broker.

A `runner.stream()` reader loses nothing by default. An event emitted on the run's loop (an
async node, however long it goes without yielding) is appended to each reader's buffer, which
grows as needed: a node that emits a million events before its reader runs holds a million
events in memory. A sync node runs in a worker thread, and that thread is held back instead:
its `emit()` waits while a reader is `_BACKLOG_LIMIT` events behind, so sync nodes take bounded
memory however slow the reader. A reader that asked for `buffer=N` never holds anyone up: past
`N` unread events it misses the newest and gets one `gap` event, in place, whose data is the
broker's `GAP` payload (`{"reason": "overflow", "missed", "first_id", "last_id"}`, the ids the
missed events' `seq` as strings), counted and built by the stream package's `MissedEvents`, as
for every bounded reader. Terminal events and the end marker are always delivered, so every
stream ends, even when the broker fails to take the terminal event.

These readers are not the stream package's `Subscription`, though they share its gap marker:
a subscription is bounded by design, guarded by a lock and drops its oldest events, while the
default reader here must never drop and holds back worker threads instead, and a bounded one
keeps its oldest events (a run's start, what a late reader most needs) and misses the newest.
Both are filled on the loop thread without a lock, on the path every token and custom event
takes.

Every event is numbered and buffered on the run's event-loop thread, so the hot path takes no
lock. `chronos.graph.emit` from a sync node in a worker thread appends to a hand-off queue
and schedules one drain on the loop per burst; every other event the loop publishes drains
that queue first, so a node's events still precede its `node_end`. A reader on another thread
or loop is safe too: it publishes its waiter before re-checking its buffer, and the loop thread
appends before looking for a waiter, so one of them always sees the other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, ClassVar, Final, final

import orjson

from chronos.errors import EmitOutsideRunError
from chronos.graph._types import StreamMode
from chronos.stream import GAP, BrokerProtocol, Event, MissedEvents

__all__ = [
    "CURRENT_NODE",
    "EVENT_TYPES",
    "Emitter",
    "EventHub",
    "EventStream",
    "StreamEvent",
    "event_payload",
    "publish_to_broker",
]

TERMINAL: Final = frozenset({"completed", "interrupt", "error", "cancelled"})
_NUMBERED: Final = frozenset(
    {"node_start", "node_end", "edge_transition", "checkpoint", "custom", "token", "gap",
     "retry"} | TERMINAL
)
EVENT_TYPES: Final = _NUMBERED | {"values"}
# LangGraph's modes where the names are shared: "values" the whole state after each step (and
# the input), "updates" each node's changes (node_end: node_id and data), "tasks" each task's
# start, retries and end, "checkpoints" each checkpoint written.
_MODE_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "values": frozenset({"values"}) | TERMINAL,
    "updates": frozenset({"node_end"}) | TERMINAL,
    "messages": frozenset({"token"}) | TERMINAL,
    "custom": frozenset({"custom"}) | TERMINAL,
    "tasks": frozenset({"node_start", "node_end", "retry"}) | TERMINAL,
    "checkpoints": frozenset({"checkpoint"}) | TERMINAL,
    "debug": _NUMBERED,
}


@final
class StreamEvent:
    """One thing that happened in a run, as subscribers of `runner.stream()` receive it.

    ```python
    async for evt in runner.stream():
        print(f"[{evt.type}] node={evt.node_id}")
    ```

    `type` is one of `node_start`, `node_end`, `edge_transition`, `checkpoint`, `custom`,
    `token`, `retry` (a failed attempt; `data` has the attempt number and the delay), and the
    terminal `completed`, `interrupt` (`data` the `graph.Interrupt`s asked, or the nodes a run
    paused before), `error`, `cancelled`; a bounded reader that fell behind gets a `gap` (its
    `data` the broker's `stream.GAP` payload; `seq` the first it missed), and a
    "values" reader `values` snapshots (numbered as the event before them). `state` is a
    read-only snapshot of the state after the node (node_end and terminal events); `data`
    holds the node's changed keys (node_end), the next node (edge_transition), the checkpoint
    id, a token's text, or a custom event's payload (whose own type is in `name`). `path`
    names the enclosing subgraph nodes, outermost first.
    `seq` numbers a run's events from 1; `timestamp` is in seconds since the epoch.

    Read-only (the compiled build refuses changes; mypy everywhere). Events with the same
    fields are equal, and an event pickles. `_replace(**changes)`, `_asdict()` and `_fields`
    work as they did when it was a named tuple; it is no longer a tuple, so it cannot be
    indexed or unpacked.
    """

    # A compiled class, not a NamedTuple: building one is a single native call that fills its
    # slots, where `tuple.__new__` on a NamedTuple packed two argument tuples and copied the
    # fields into a third object, a third of what the hub spent on a custom event
    # (BENCHMARKS.md, graph execution).

    __slots__ = ("data", "error", "name", "node_id", "path", "run_id", "seq", "session_id",
                 "state", "timestamp", "type")
    _fields: ClassVar[tuple[str, ...]] = (
        "type", "node_id", "seq", "timestamp", "run_id", "session_id", "state", "error", "data",
        "name", "path",
    )

    def __init__(
        self,
        type: str,
        node_id: str,
        seq: int,
        timestamp: float,
        run_id: str,
        session_id: str,
        state: Mapping[str, Any] | None = None,
        error: str = "",
        data: Any = None,
        name: str = "",
        path: tuple[str, ...] = (),
    ) -> None:
        self.type: Final = type
        self.node_id: Final = node_id
        self.seq: Final = seq
        self.timestamp: Final = timestamp
        self.run_id: Final = run_id
        self.session_id: Final = session_id
        self.state: Final = state
        self.error: Final = error
        self.data: Final = data
        self.name: Final = name
        self.path: Final = path

    def _values(self) -> tuple[Any, ...]:
        return (self.type, self.node_id, self.seq, self.timestamp, self.run_id, self.session_id,
                self.state, self.error, self.data, self.name, self.path)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self._values(), strict=True))

    def _replace(self, **changes: Any) -> StreamEvent:
        return StreamEvent(**(self._asdict() | changes))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamEvent):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._asdict().items())
        return f"StreamEvent({fields})"

    def __reduce__(self) -> tuple[type[StreamEvent], tuple[Any, ...]]:
        return StreamEvent, self._values()


@final
class Emitter:
    """What `chronos.graph.emit()` calls in a context: the run's hub, and the node (inside the
    subgraph nodes `path`) the events come from; `node_id` is "" outside a node. Without a
    hub, outside a run, it raises `EmitOutsideRunError`."""

    # The hub and the node in one value, set once per node: each `emit()` makes one context
    # variable lookup, not one for the hub and one for the node.
    __slots__ = ("hub", "node_id", "path")

    def __init__(self, hub: EventHub | None, node_id: str, path: tuple[str, ...]) -> None:
        self.hub: Final = hub
        self.node_id: Final = node_id
        self.path: Final = path

    def __call__(self, type: str, data: Any) -> None:
        hub = self.hub
        if hub is None:
            raise EmitOutsideRunError(f"emit({type!r}) called outside a running node")
        hub.sink(self.node_id, self.path, type, data)

    def skip(self, type: str) -> bool:
        """`EventHub.skip` of this context's run; False outside a run, where emitting raises."""
        hub = self.hub
        return hub is not None and hub.skip(type)


_OUTSIDE_RUN: Final = Emitter(None, "", ())  # read-only, so one shared default is safe
CURRENT_NODE: ContextVar[Emitter] = ContextVar("chronos_graph_node", default=_OUTSIDE_RUN)
"""Where `emit()` sends events in this context, and the node (and subgraph path) executing."""

# The names the per-event path calls, as finals: compiled, each is a static, not a lookup in
# the module's dict per event.
_node_emitter: Final[Callable[[], Emitter]] = CURRENT_NODE.get
_now: Final[Callable[[], float]] = time.time
_thread_id: Final = threading.get_ident


def emit(type: str, data: Any = None) -> None:
    """Send a custom event into the stream of the run this code is executing in.

    ```python
    def extract(state):
        graph.emit("progress", {"done": 3, "of": 10})
        ...
    ```

    It never loses the event. From a node on the run's event loop it returns at once; from a
    sync node in a worker thread it may wait while a reader of the run is far behind (the
    hub decides: see `chronos.graph.Runner.stream`).

    Raises:
        EmitOutsideRunError: called outside a running node, where no stream would receive it.
    """
    # Outside a run the context's default `Emitter` raises, so `emit` itself tests nothing:
    # it is on every token's path. `__call__` by name: compiled, that is a native call, where
    # calling the object goes through the interpreter's call protocol and parses the
    # arguments again.
    _node_emitter().__call__(type, data)


def event_payload(event: StreamEvent) -> dict[str, Any]:
    """The event as a dict, as a broker publishes it: JSON-ready for `orjson` (a token's
    `MessageDelta` stays a dataclass, which the broker encodes once, with the rest)."""
    data = event.data
    return {
        "type": event.type,
        "node_id": event.node_id,
        "seq": event.seq,
        "timestamp": event.timestamp,
        "run_id": event.run_id,
        "session_id": event.session_id,
        "state": None if event.state is None else dict(event.state),
        "error": event.error,
        "data": dict(data) if type(data) is MappingProxyType else data,
        "name": event.name,
        "path": list(event.path),
    }


def publish_to_broker(broker: BrokerProtocol, event: StreamEvent) -> None:
    """Publish a graph event to a broker, the session id as topic, its payload as data."""
    payload = event_payload(event)
    try:
        broker.publish(Event(event.type, payload), event.session_id)
    except TypeError:
        # Without a store nothing forced the state to be JSON; a UI still gets every event,
        # with the values JSON cannot carry shown by their repr.
        printable = orjson.loads(orjson.dumps(payload, default=repr))
        broker.publish(Event(event.type, printable), event.session_id)


_END: Final = object()
_HANDOFF_LIMIT: Final = 65_536  # events a worker thread may get ahead of the loop
_BACKLOG_LIMIT: Final = 65_536  # unread events of a lossless reader that hold a worker thread
# A lossless reader's capacity: never reached, and a short int for the compiled fast path.
_UNBOUNDED: Final = 1 << 60
_RETRY_DRAIN: Final = 0.0005  # seconds between drains while a reader is far behind
_WORKER_WAIT: Final = 0.1  # seconds a held-back worker thread waits before checking the loop


class EventStream:
    """The events of one run, as an async iterator that ends when the run ends.

    ```python
    events = runner.stream()            # subscribe before the run starts
    async def consume():
        async for evt in events:
            print(f"[{evt.type}] node={evt.node_id}")
    await asyncio.gather(consume(), runner.run("session-1", {"query": "hi"}))
    ```

    Use `async with runner.stream() as events:` to stop early; `aclose()` unsubscribes.
    Created by `Runner.stream()`.
    """

    __slots__ = ("_append", "_buffer", "_capacity", "_closed", "_hub", "_missed", "_open",
                 "_popleft", "_types", "_waiter", "_waiter_thread", "_woken", "lossless",
                 "modes", "session_id")

    def __init__(
        self, modes: Collection[str], capacity: int | None, session_id: str | None
    ) -> None:
        self.modes = tuple(modes)
        self.session_id = session_id
        self._types = frozenset().union(*(_MODE_TYPES[m] for m in modes))
        # Without a capacity the buffer grows and worker threads wait for the reader instead.
        self.lossless = capacity is None
        self._capacity = _UNBOUNDED if capacity is None else capacity
        self._buffer: deque[Any] = deque()
        # The buffer's two per-event methods, bound once: compiled, `buffer.append(x)` looks the
        # method up by name on every call, while calling a bound method is one C call.
        self._append: Callable[[Any], None] = self._buffer.append
        self._popleft: Callable[[], Any] = self._buffer.popleft
        self._missed = MissedEvents()  # since the last gap: what a bounded reader did not get
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_thread = 0
        self._woken: asyncio.Future[None] | None = None
        self._closed = False
        # Neither closed nor missing events: the one flag the delivery fast path reads.
        self._open = True
        self._hub: EventHub | None = None

    @property
    def closed(self) -> bool:
        """Whether the stream has ended or was closed: no more events will come."""
        return self._closed

    def __aiter__(self) -> EventStream:
        # The coroutine `__anext__`, not an async generator: a generator's `asend` hands each
        # value back in a StopIteration, which CPython must build as an instance when the value
        # is a tuple (every `StreamEvent` is), while a coroutine's return value reaches
        # `async for` with no exception, which is cheaper per buffered event.
        return self

    async def __anext__(self) -> StreamEvent:
        buffer = self._buffer
        while True:
            if buffer:
                item = self._popleft()
                if item is _END:
                    self._closed = True
                    self._open = False
                    raise StopAsyncIteration
                event: StreamEvent = item
                return event
            if self._closed:
                raise StopAsyncIteration
            await self._wait()

    async def _wait(self) -> None:
        """Sleep until the buffer has something (at once if it already has)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiter_thread = _thread_id()
        self._waiter = waiter
        if self._buffer:  # an event landed before the producer could see the waiter
            self._waiter = None
            return
        try:
            await waiter
        finally:
            self._waiter = None

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop receiving events and drop what is buffered. Idempotent."""
        self._closed = True
        self._open = False
        self._buffer.clear()
        hub, self._hub = self._hub, None
        waiter = self._waiter
        if waiter is not None:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
        if hub is not None:
            hub.remove(self)

    def _offer(self, event: StreamEvent) -> None:
        """Buffer an event this reader wants; runs on the run's loop thread only.

        `EventHub` inlines the first branch for tokens and custom events.
        """
        buffer = self._buffer
        if self._open and len(buffer) < self._capacity:
            self._append(event)
            if self._waiter is not None:
                self._wake()
        else:
            self._offer_full(event)

    def _offer_full(self, event: StreamEvent) -> None:
        if self._closed:
            return
        buffer = self._buffer
        if len(buffer) >= self._capacity and event.type not in TERMINAL:
            self._missed.add(str(event.seq))
            self._open = False
            return
        if self._missed.count:
            buffer.append(self._gap(event))
        buffer.append(event)
        if self._waiter is not None:
            self._wake()

    def _end(self) -> None:
        """The run ended; runs on the run's loop thread."""
        self._buffer.append(_END)
        self._hub = None
        self._wake()

    def _gap(self, after: StreamEvent) -> StreamEvent:
        """The missed events' marker, numbered as the first of them, before `after`."""
        first = int(self._missed.first_id)
        marker = self._missed.gap()
        self._open = not self._closed
        return StreamEvent(GAP, "", first, _now(), after.run_id, after.session_id,
                           data=marker.data)

    def _wake(self) -> None:
        # Only the loop thread calls this, so `_woken` needs no lock: it makes the wake-up one
        # per sleep, not one call_soon_threadsafe per event when the reader is elsewhere.
        waiter = self._waiter
        if waiter is None or waiter is self._woken or waiter.done():
            return
        self._woken = waiter
        if _thread_id() == self._waiter_thread:
            waiter.set_result(None)
            # The reader is on this thread, so it cannot be publishing a new waiter meanwhile:
            # clearing it spares the events buffered before the reader runs a call each.
            self._waiter = None
        else:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


# A dict, not a read-only view, so the compiled delivery path indexes it as a dict; shared,
# so never changed.
_NOBODY: Final[tuple[EventStream, ...]] = ()
_NO_ROUTES: Final[dict[str, tuple[EventStream, ...]]] = {t: _NOBODY for t in EVENT_TYPES}


def _read_only(state: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if state is None or isinstance(state, MappingProxyType):
        return state
    return MappingProxyType(state)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventHub:
    """Numbers a run's events and hands each to the subscribers that want it and the broker.

    Created on the run's event loop; `publish` and `end` are called there. `sink` (what
    `chronos.graph.emit` calls) works from any thread. The lock only guards the subscriber
    list, which readers on other threads may change by closing their stream. The broker gets
    the events of `broker_types` (None: every type), so a run whose broker readers want no
    tokens builds none for it.
    """

    __slots__ = ("_active", "_broker", "_broker_failure", "_broker_types", "_custom_broker",
                 "_custom_route", "_drain_scheduled", "_ended", "_handoff", "_lock", "_loop",
                 "_loop_thread", "_lossless", "_retry", "_room", "_routes", "_subscribers",
                 "_token_broker", "_token_route", "run_id", "seq", "session_id")

    def __init__(
        self,
        run_id: str,
        session_id: str,
        subscribers: Sequence[EventStream],
        broker: BrokerProtocol | None,
        lock: threading.Lock,
        broker_types: Collection[str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self.seq = 0
        self._subscribers = list(subscribers)
        self._broker = broker
        self._broker_types = EVENT_TYPES if broker_types is None else frozenset(broker_types)
        # What `sink` publishes to, read per token or custom event: None when the broker
        # takes none of them.
        self._token_broker = broker if "token" in self._broker_types else None
        self._custom_broker = broker if "custom" in self._broker_types else None
        self._lock = lock
        self._ended = False
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._handoff: deque[tuple[str, str, Any, tuple[str, ...]]] = deque()
        self._drain_scheduled = False
        self._retry: asyncio.TimerHandle | None = None  # the one drain armed on a timer
        # Set by the loop when a held-back worker may go on; made by the first worker held.
        self._room: threading.Event | None = None
        # What the broker raised in a drain, which has no caller: the run's next event raises it.
        self._broker_failure: Exception | None = None
        for sub in self._subscribers:
            sub._hub = self
        self._reroute()

    def _reroute(self) -> None:
        """Recompute who wants each event type; swapped in whole, so delivery needs no lock."""
        subs = self._subscribers
        self._active = bool(subs) or self._broker is not None
        if not subs:  # most runs: no local reader, and one shared table instead of their own
            self._routes = _NO_ROUTES
            self._token_route = self._custom_route = self._lossless = _NOBODY
            return
        self._routes = routes = {t: tuple(s for s in subs if t in s._types) for t in EVENT_TYPES}
        self._token_route = routes["token"]
        self._custom_route = routes["custom"]
        self._lossless = tuple(s for s in subs if s.lossless)

    def add(self, subscriber: EventStream) -> None:
        with self._lock:
            if self._ended:
                subscriber._end()
                return
            subscriber._hub = self
            self._subscribers.append(subscriber)
            self._reroute()

    def remove(self, subscriber: EventStream) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
            self._reroute()

    def wants(self, type: str) -> bool:
        """Whether any subscriber takes events of this type."""
        return bool(self._routes[type])

    def publish_view(
        self, type: str, node_id: str, *, state: Mapping[str, Any], path: tuple[str, ...] = ()
    ) -> None:
        """Deliver a derived event to the subscribers that asked for it, and no one else.

        A view (the "values" snapshot) repeats what numbered events already carry, so it
        takes the number of the event before it instead of its own, and skips the broker:
        `seq` stays the same whoever listens, and a broker's readers see no duplicates.
        """
        if self._ended:
            return
        event = StreamEvent(type, node_id, self.seq, _now(), self.run_id, self.session_id,
                            MappingProxyType(state), "", None, "", path)
        for sub in self._routes[type]:
            sub._offer(event)

    def observed(self, count: int = 1) -> bool:
        """Whether anyone will receive the next `count` events; if not, they are numbered now.

        ```python
        if hub.observed():
            hub.publish("node_end", node_id, data=MappingProxyType(dict(update)))
        ```

        Lets a caller skip building events nobody reads, and must then not publish them:
        `seq` never depends on who listens, so a reader that joins mid-run sees the numbers
        every other reader sees.
        """
        if self._active:
            return True
        self.seq += count
        return False

    def publish(
        self,
        type: str,
        node_id: str,
        *,
        state: Mapping[str, Any] | None = None,
        error: str = "",
        data: Any = None,
        name: str = "",
        path: tuple[str, ...] = (),
    ) -> None:
        """Number and deliver one event (on the loop thread); never waits for readers.

        What worker threads emitted before it is delivered first, so that a sync node's
        events precede its `node_end` whatever the readers' backlog."""
        if self._handoff:
            self._drain_all()
        if self._broker_failure is not None:
            failure, self._broker_failure = self._broker_failure, None
            raise failure
        self._deliver(type, node_id, _read_only(state), error, data, name, path)

    def _deliver(
        self,
        type: str,
        node_id: str,
        state: Mapping[str, Any] | None,
        error: str,
        data: Any,
        name: str,
        path: tuple[str, ...],
    ) -> None:
        if self._ended:
            return
        self.seq = seq = self.seq + 1
        subscribers = self._routes[type]
        broker = self._broker if type in self._broker_types else None
        if not subscribers and broker is None:
            return
        event = StreamEvent(type, node_id, seq, _now(), self.run_id, self.session_id, state,
                            error, data, name, path)
        for sub in subscribers:
            sub._offer(event)
        if broker is not None:
            publish_to_broker(broker, event)

    def sink(self, node_id: str, path: tuple[str, ...], type: str, data: Any) -> None:
        """Receive `chronos.graph.emit()` from a node (its `Emitter`): tokens stay `token`
        events, the rest are custom."""
        if _thread_id() != self._loop_thread:
            self._hand_off(type, node_id, data, path)
            return
        # `_deliver` and `EventStream._offer` inlined, the two routes read from attributes:
        # this is every token's and custom event's path, and each call or lookup showed.
        if self._ended:
            return
        self.seq = seq = self.seq + 1
        if type == "token":
            subscribers = self._token_route
            broker = self._token_broker
            if not subscribers and broker is None:
                return
            event = StreamEvent("token", node_id, seq, _now(), self.run_id, self.session_id,
                                None, "", data, "", path)
        else:
            subscribers = self._custom_route
            broker = self._custom_broker
            if not subscribers and broker is None:
                return
            event = StreamEvent("custom", node_id, seq, _now(), self.run_id, self.session_id,
                                None, "", data, type, path)
        for sub in subscribers:
            if sub._open and len(sub._buffer) < sub._capacity:
                sub._append(event)
                if sub._waiter is not None:
                    sub._wake()
            else:
                sub._offer_full(event)
        if broker is not None:
            publish_to_broker(broker, event)

    def skip(self, type: str) -> bool:
        """Whether nobody takes the next `sink` event of `type` ("token", else custom): if
        so it is numbered now, as `sink` would, and its caller need not build it (a served
        `runs.wait` takes none of its model's tokens). Always False off the loop's thread,
        where `sink` hands events to the loop, which numbers them."""
        if self._ended or _thread_id() != self._loop_thread:
            return False
        if type == "token":
            if self._token_route or self._token_broker is not None:
                return False
        elif self._custom_route or self._custom_broker is not None:
            return False
        self.seq += 1
        return True

    def _hand_off(self, type: str, node_id: str, data: Any, path: tuple[str, ...]) -> None:
        """From a worker thread: queue for the loop, scheduling one drain per burst."""
        handoff = self._handoff
        if len(handoff) >= _HANDOFF_LIMIT:
            self._hold_back()
        if self._ended:
            return
        handoff.append((type, node_id, data, path))
        # The drain clears the flag before emptying the queue, so an append it misses always
        # sees the flag down and schedules another drain.
        if not self._drain_scheduled:
            self._schedule_drain()

    def _hold_back(self) -> None:
        """Block this worker thread, never the run's loop, until the loop took some events.

        It waits on an event the loop sets, not in a sleep loop: a thread waking up to look
        takes the GIL from the loop each time, and on a busy machine each hand-back of the GIL
        costs the loop a wait for the OS scheduler, which starved the readers we wait for.
        """
        room = self._room
        if room is None:
            with self._lock:
                if self._room is None:
                    # The loop sets it only once it exists; the length is re-checked after
                    # each clear below, so a drain before this cannot be missed.
                    self._room = threading.Event()
                room = self._room
        while len(self._handoff) >= _HANDOFF_LIMIT and not self._ended:
            room.clear()
            if len(self._handoff) < _HANDOFF_LIMIT:  # the loop made room before the clear
                return
            if not room.wait(_WORKER_WAIT) and self._loop.is_closed():
                self._ended = True  # the loop died without ending the run

    def _schedule_drain(self) -> None:
        self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the run is long over
            self._ended = True

    def _drain(self) -> None:
        """Deliver what worker threads emitted, as much as the lossless readers have room for."""
        self._drain_scheduled = False
        room = _UNBOUNDED
        for sub in self._lossless:
            room = min(room, _BACKLOG_LIMIT - len(sub._buffer))
        try:
            self._deliver_handed_off(room)
        except Exception as exc:
            if self._broker_failure is None:
                self._broker_failure = exc
        if self._handoff and not self._ended and self._retry is None:
            # A reader is far behind. Look again shortly, on one timer of the loop's: readers
            # do not signal room, and a drain per event the worker adds meanwhile would cost
            # the loop a wake-up per event, slowing the very reader we wait for.
            self._retry = self._loop.call_later(_RETRY_DRAIN, self._retry_drain)

    def _retry_drain(self) -> None:
        self._retry = None
        self._drain()

    def _drain_all(self) -> None:
        self._deliver_handed_off(_UNBOUNDED)

    def _deliver_handed_off(self, limit: int) -> None:
        """Deliver up to `limit` handed-off events; a broker's failure stops none of them
        reaching the local readers, and the first one is raised after."""
        handoff = self._handoff
        failure: Exception | None = None
        while handoff and limit > 0:
            type, node_id, data, path = handoff.popleft()
            try:
                if type == "token":
                    self._deliver("token", node_id, None, "", data, "", path)
                else:
                    self._deliver("custom", node_id, None, "", data, type, path)
            except Exception as exc:  # the broker's: readers were offered the event first
                if failure is None:
                    failure = exc
            limit -= 1
        room = self._room
        if room is not None:  # whoever drained, a held-back worker thread may go on
            room.set()
        if failure is not None:
            raise failure

    def end(
        self,
        type: str,
        node_id: str,
        *,
        state: Mapping[str, Any] | None = None,
        error: str = "",
        data: Any = None,
        path: tuple[str, ...] = (),
    ) -> None:
        """Deliver what worker threads emitted, then the terminal event; end every stream.

        The streams end even if the broker refuses events (closed, unreachable, or unable to
        encode one): the local readers get every event and the end, the caller the broker's
        first exception.
        """
        try:
            self._drain_all()
        finally:
            try:
                self._deliver(type, node_id, _read_only(state), error, data, "", path)
            finally:
                self._end_streams()
        failure, self._broker_failure = self._broker_failure, None
        if failure is not None:
            raise failure

    def _end_streams(self) -> None:
        with self._lock:
            self._ended = True
            room = self._room
            if room is not None:
                room.set()
            for sub in self._subscribers:
                sub._end()
            self._subscribers.clear()
            self._reroute()


def resolve_modes(mode: StreamMode | Sequence[StreamMode]) -> tuple[str, ...]:
    """Validate a `stream(mode=...)` argument."""
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unknown = [m for m in modes if m not in _MODE_TYPES]
    if unknown or not modes:
        raise ValueError(f"unknown stream mode(s) {unknown}; use {sorted(_MODE_TYPES)}")
    return modes

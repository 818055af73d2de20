"""`SSEHandler`: a plain ASGI app that streams a broker's events as Server-Sent Events.

It is a class, not a function, because Starlette's `Route` treats functions and methods as
request -> response endpoints and passes any other callable through as a raw ASGI app.

One connection is one subscription and two tasks: the request's own task pumps events
(everything pending is encoded into one write; a heartbeat comment when idle) and a second
task waits for `http.disconnect`. Whichever finishes first cancels the other, and the
subscription is closed in `finally`, so a client that goes away frees its buffer at once.
A client that stops reading makes `send` block (the server applies back-pressure); after
`send_timeout` the connection is dropped. Meanwhile its subscription overflows as declared,
never slowing the publisher or anyone else.

Shutdown: ASGI servers do not tell a streaming response that they are stopping (uvicorn waits
for it to finish, up to `timeout_graceful_shutdown`, then cancels it). Close the broker when
shutdown begins (`await broker.aclose()`) and every stream ends at once, cleanly (one whose
client stopped reading: within `send_timeout`); if it is cancelled instead, it still
unsubscribes. `examples/sse_broker.py` shows how.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chronos.errors import BrokerError, InvalidLastEventID, SubscriptionOverflow
from chronos.stream._wire import HEARTBEAT, encode_retry, event_frame

if TYPE_CHECKING:
    from chronos.stream._event import Event
    from chronos.stream._protocol import BrokerProtocol, Overflow, Subscription

__all__ = ["DEFAULT_MAX_TOPICS", "Authorize", "SSEHandler"]

DEFAULT_MAX_TOPICS: Final = 100
"""How many topics one SSE connection may follow unless `SSEHandler(max_topics=...)` says."""

Authorize = Callable[[Request, "frozenset[str] | None"], "bool | Awaitable[bool]"]
"""`authorize(request, topics)`: may this request read `topics` (None: every topic)?

Return True to allow, False for 403 Forbidden; raise `starlette.exceptions.HTTPException`
(e.g. 401 with a `WWW-Authenticate` header) for any other answer.
"""

_connection_numbers = itertools.count(1)

_STREAM_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class SSEHandler:
    """An ASGI app streaming a broker's events to browsers as Server-Sent Events.

    ```python
    app = Starlette(routes=[
        Route("/events", broker.sse_handler()),                # every topic
        Route("/sessions/{topic}/events", broker.sse_handler()),  # one topic, from the path
    ])
    ```

    Over any broker: `SSEHandler(broker)`, which `Broker` and `RedisBroker` also spell
    `broker.sse_handler()`. Works under any ASGI server, in Starlette and
    FastAPI (`app.add_route(...)` or `Route`), or as the whole app.

    Args:
        broker: where events come from.
        subscription_id: a fixed subscription id for every connection; a new connection with
            it replaces (closes) the previous one. None (the default): each connection has a
            subscription of its own.
        topics: fixed topics to follow. Otherwise a `{topic}` path parameter, else repeated
            `?topic=` query parameters, else every topic.
        authorize: decides whether a request may read its topics (see `Authorize`).
        named_events: add an `event: <type>` line to each message. Off by default, because
            `EventSource.onmessage` sees only unnamed messages; the type is in the JSON anyway.
        heartbeat: seconds of idleness before a comment is sent to keep proxies from closing
            the connection.
        retry: milliseconds a browser waits before reconnecting, sent once (None: don't).
        send_timeout: seconds a write may wait for a client that stopped reading before the
            connection is dropped (checked four times per `send_timeout`).
        cors_origins: origins allowed to read the stream from other sites (`["*"]` for any):
            the handler is then wrapped in Starlette's `CORSMiddleware`, which answers
            preflight requests. Shorthand for adding that middleware yourself.
        cors_credentials: allow cookies on cross-site requests (`withCredentials`).
        overflow: what happens to a connection that falls `max_pending` events behind:
            `"drop_oldest"` sends a `gap` event in place of the events dropped;
            `"disconnect"` ends the response, and the browser reconnects with
            `Last-Event-ID` and resumes exactly (as long as the events are retained).
        max_pending: each connection's buffer (None: the broker's `max_pending`).
        max_topics: how many topics one connection may ask for (repeated `?topic=`); more
            is answered with 400. Each followed topic costs the broker work on every read
            (on Redis, a key in the one blocking read every subscriber shares), so one
            connection naming thousands would slow everyone else's.

    A reconnecting client resumes after its `Last-Event-ID` header, or the `last_event_id` /
    `lastEventId` query parameter for clients that cannot set headers. A malformed one is
    answered with 400.
    """

    def __init__(
        self,
        broker: BrokerProtocol,
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
    ) -> None:
        if heartbeat <= 0 or send_timeout <= 0 or max_topics < 1:
            raise ValueError("heartbeat, send_timeout and max_topics must be positive")
        self.broker = broker
        self.subscription_id = subscription_id
        self.topics = frozenset(topics) if topics is not None else None
        self.authorize = authorize
        self.named_events = named_events
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self._preamble = encode_retry(retry) if retry is not None else b": connected\n"
        self.cors_origins = frozenset(cors_origins or ())
        self.cors_credentials = cors_credentials
        self._app: ASGIApp = self._serve
        if cors_origins:
            self._app = CORSMiddleware(
                self._serve,
                allow_origins=list(cors_origins),
                allow_credentials=cors_credentials,
                allow_methods=["GET", "HEAD"],
                allow_headers=["*"],  # what the browser asks for: `Last-Event-ID`, say
                max_age=600,
            )
        self.overflow: Overflow = overflow
        self.max_pending = max_pending
        self.max_topics = max_topics
        # The events last joined, and their body: see `_encode`. One attribute, so that a
        # handler serving several threads' event loops never pairs one's batch with another's
        # body.
        self._last_joined: tuple[list[Event], bytes] = ([], b"")
        # The write watchdog of the event loop that last opened a stream (see `_SendWatch`);
        # a connection keeps the one it started with.
        self._watch: _SendWatch | None = None

    def __repr__(self) -> str:
        return f"<SSEHandler subscription_id={self.subscription_id!r} topics={self.topics!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        # Two steps, so that what is needed only to decide (headers, query, ...) is freed
        # before the stream starts: a stream may stay open for hours, and there are many.
        opened = await self._open(scope, send)
        if opened is not None:
            await self._stream(opened, scope["method"] == "HEAD", receive, send)

    async def _open(self, scope: Scope, send: Send) -> Subscription | None:
        """Check the request and subscribe; or respond with an error and return None."""
        headers = _headers(scope)
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, "use GET", [(b"allow", b"GET, HEAD")])
            return None

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        topics = self._topics(scope, query)
        if topics is not None and len(topics) > self.max_topics:
            detail = f"{len(topics)} topics asked for; at most {self.max_topics} per connection"
            await _respond(send, 400, detail, [])
            return None
        if self.authorize is not None:
            refusal = await self._check(scope, topics)
            if refusal is not None:
                status, detail, extra = refusal
                await _respond(send, status, detail, extra)
                return None

        last_event_id = headers.get("last-event-id")
        for name in ("last_event_id", "lastEventId"):
            if not last_event_id and name in query:
                last_event_id = query[name][-1]
        if subscription_id := self.subscription_id:
            replace = True
        else:
            subscription_id, replace = f"sse-{next(_connection_numbers)}", False
        try:
            subscription = self.broker.subscribe(
                subscription_id,
                topics,
                last_event_id=last_event_id or None,
                replace=replace,
                max_pending=self.max_pending,
                overflow=self.overflow,
            )
        except InvalidLastEventID as exc:
            await _respond(send, 400, f"{exc}; expected an id this server sent", [])
            return None
        except BrokerError as exc:
            await _respond(send, 503, str(exc), [])
            return None
        return subscription

    async def _stream(
        self,
        subscription: Subscription,
        head_only: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS}
            )
            if head_only:
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": self._preamble, "more_body": True})
            loop = asyncio.get_running_loop()
            watch = self._watch
            if watch is None or watch.loop is not loop:
                watch = self._watch = _SendWatch(loop, self.send_timeout)
            # A bare task, and this task cancelled by hand rather than an anyio task group or
            # cancel scope: they hold 2-4 KiB more per connection, and there may be 10,000
            # idle streams.
            stop = _Stop()
            watcher = loop.create_task(_watch_disconnect(receive))
            watcher.add_done_callback(stop)
            try:
                if await self._pump(subscription, send, watch, stop):
                    # The end of the response is bounded like every other write: to a client
                    # that stopped reading it would wait forever (after `broker.aclose()`, or
                    # an overflow disconnect).
                    end = {"type": "http.response.body", "body": b"", "more_body": False}
                    await _send_watched(send, end, watch, stop)
            except asyncio.CancelledError:
                if not stop.ours():
                    raise  # not (only) ours: the server is cancelling the response
            finally:
                watcher.remove_done_callback(stop)
                watcher.cancel()
                watch.sending.pop(stop, None)  # a write that raised
        finally:
            await subscription.aclose()

    async def _pump(
        self, subscription: Subscription, send: Send, watch: _SendWatch, stop: _Stop
    ) -> bool:
        """Send events until the subscription ends (True); `watch` calls `stop` on a stall."""
        heartbeat = self.heartbeat
        sending = watch.sending
        clock = watch.loop.time
        while True:
            try:
                batch = await subscription.receive_batch(timeout=heartbeat)
            except SubscriptionOverflow:
                return True  # fell behind under overflow="disconnect": end the response
            if batch:
                body = self._encode(batch)
            elif subscription.closed:
                return True
            else:  # idle for `heartbeat` seconds
                body = HEARTBEAT
            # `_send_watched`, inline: this runs once per wake-up of every connection.
            sending[stop] = clock()
            if watch.timer is None:
                watch.arm()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            del sending[stop]

    def _encode(self, batch: list[Event]) -> bytes:
        """The body for `batch`: its events' frames, joined."""
        # In a fan-out, every connection wakes up to the same events (the same objects): join
        # them once, not once per connection (per connection it was a large share of the
        # server's CPU; BENCHMARKS.md). Events compare by identity, so the lists' `==` runs
        # in C and never looks at the data (which numpy arrays would refuse).
        last, body = self._last_joined
        if batch == last:
            return body
        named = self.named_events
        body = b"".join([event_frame(event, named=named) for event in batch])
        self._last_joined = (batch, body)
        return body

    def _topics(self, scope: Scope, query: dict[str, list[str]]) -> frozenset[str] | None:
        if self.topics is not None:
            return self.topics
        path_topic = scope.get("path_params", {}).get("topic")
        if path_topic:
            return frozenset([str(path_topic)])
        if "topic" in query:
            return frozenset(query["topic"])
        return None

    async def _check(
        self, scope: Scope, topics: frozenset[str] | None
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        assert self.authorize is not None
        try:
            verdict = self.authorize(Request(scope), topics)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except HTTPException as exc:
            extra = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
            return exc.status_code, exc.detail, extra
        if verdict is True:
            return None
        return 403, "not allowed to read these topics", []


class _Stop:
    """Ends one stream early by cancelling its task; the task then tells its own cancellation
    (disconnect, stall) from anyone else's (server shutdown), like `asyncio.timeout` does.

    Also the disconnect watcher's done-callback: the client went away, or `receive` failed.
    """

    __slots__ = ("_cancelling", "_requested", "_task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._requested = False

    def __call__(self, watcher: asyncio.Task[None] | None = None) -> None:
        if watcher is not None and not watcher.cancelled():
            watcher.exception()  # retrieved: a failing `receive` ends the stream like a disconnect
        if not self._requested:
            self._requested = True
            self._task.cancel()

    def ours(self) -> bool:
        """Called on `CancelledError`: was it ours alone? Then it is undone (`uncancel`)."""
        return self._requested and self._task.uncancel() <= self._cancelling


class _SendWatch:
    """Calls `stop` for writes that have waited `send_timeout`: the client stopped reading.

    One per event loop (and handler), not one timer per connection: writes happen once per
    wake-up of every connection, and there may be 10,000 idle ones. `sending` maps each
    connection's `_Stop` to when its current write began; the timer runs, every quarter of
    `send_timeout`, only while some write is in progress at the time it would fire.
    """

    __slots__ = ("_period", "loop", "send_timeout", "sending", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, send_timeout: float) -> None:
        self.loop = loop
        self.send_timeout = send_timeout
        self._period = send_timeout / 4
        self.sending: dict[_Stop, float] = {}
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.timer = self.loop.call_later(self._period, self._check)

    def _check(self) -> None:
        if not self.sending:
            self.timer = None
            return
        stalled_since = self.loop.time() - self.send_timeout
        for stop, since in list(self.sending.items()):
            if since <= stalled_since:
                stop()
        self.arm()


async def _send_watched(send: Send, message: Message, watch: _SendWatch, stop: _Stop) -> None:
    watch.sending[stop] = watch.loop.time()
    if watch.timer is None:
        watch.arm()
    await send(message)
    del watch.sending[stop]


async def _watch_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _respond(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = (text + "\n").encode() if text else b""
    start_headers = [(b"content-type", b"text/plain; charset=utf-8"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Used as the whole app, the handler has nothing to start or stop.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

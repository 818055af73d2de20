"""A run's stream over SSE: `event: <mode>` / `data: <json>` / `id: <broker id>` frames.

Fed by a broker subscription to the run's thread, so a run executing in another process
streams the same way, and `Last-Event-ID` resumes through the broker's replay. The stream ends
with the run's `run_end` marker; a client that leaves ends it early and, if the run was asked
to (`on_disconnect="cancel"`), cancels the run.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from chronos.server._metrics import ServerMetrics
from chronos.server._retention import run_topics
from chronos.server._stream_modes import RunTranslator
from chronos.stream import GAP, BrokerProtocol, Event, Subscription

__all__ = [
    "HEARTBEAT_SECONDS",
    "StreamInRequestTask",
    "open_subscription",
    "run_stream_response",
    "trace_headers",
]

HEARTBEAT_SECONDS: Final = 10.0
_MAX_PENDING: Final = 100_000  # events held for a slow client before it gets a gap
_HEARTBEAT: Final = b": heartbeat\n\n"
_BURST_SECONDS: Final = 0.010  # frames closer together than this share a write
# Subscription ids: a counter, unique in this process (a uuid4 per stream cost 5 µs), after a
# prefix of its own, unlike the ids of another process or of the application's subscriptions.
_SUBSCRIPTION_PREFIX: Final = f"run-stream-{uuid.uuid4().hex[:12]}-"
_subscription_numbers: Final = itertools.count()


def open_subscription(broker: BrokerProtocol, thread_id: str,
                      last_event_id: str | None = None) -> Subscription:
    """Subscribe to a thread's events: before a run starts, to miss none of them.

    Raises:
        InvalidLastEventID: a malformed `last_event_id` (answered with 400).
    """
    return broker.subscribe(f"{_SUBSCRIPTION_PREFIX}{next(_subscription_numbers)}",
                            run_topics(thread_id),
                            last_event_id=last_event_id, max_pending=_MAX_PENDING)


def frame(event: str, data: Any, id: str | None = None) -> bytes:
    encoded = orjson.dumps(data, default=repr)
    if id:
        return b"event: %b\ndata: %b\nid: %b\n\n" % (event.encode(), encoded, id.encode())
    return b"event: %b\ndata: %b\n\n" % (event.encode(), encoded)


def trace_headers(traceparent: str) -> dict[str, str]:
    """A traced run's response headers: its span's W3C `traceparent` (none if untraced)."""
    return {"traceparent": traceparent} if traceparent else {}


def run_stream_response(
    run_id: str,
    subscription: Subscription,
    *,
    modes: tuple[str, ...],
    subgraphs: bool,
    started: bool,
    send_metadata: bool,
    metrics: ServerMetrics,
    traceparent: str = "",
    on_disconnect: Callable[[], None] | None = None,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """The SSE response streaming run `run_id` from `subscription` (which it closes).

    A traced run's `traceparent` is a header of the response and a key of the `metadata`
    event's data (the SDKs pass unknown keys through). `on_disconnect` is called if the
    client leaves before the run's end.
    """
    translator = RunTranslator(run_id, modes, subgraphs=subgraphs, started=started)
    metadata = {"run_id": run_id, "attempt": 1, **trace_headers(traceparent)}
    body = _frames(subscription, translator, metadata if send_metadata else None,
                   metrics=metrics, on_disconnect=on_disconnect)
    return StreamInRequestTask(body, media_type="text/event-stream", headers={
        "Cache-Control": "no-store", **trace_headers(traceparent), **(headers or {})})


class StreamInRequestTask(StreamingResponse):
    """Streams in the request's own task, which a second task stops when the client leaves.

    Starlette, under the ASGI spec uvicorn declares (2.3), streams the body from a task of
    its own, started after the handler returns: the `metadata` event then waited for a loop
    iteration, a round of every run streaming meanwhile (50 runs x a token each, BENCHMARKS.md).
    Here it is written before the task first suspends; the task watching for `http.disconnect`
    starts next, and only needs to.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None  # an ASGI app runs in a task
        left = False

        async def watch() -> None:
            nonlocal left
            await self.listen_for_disconnect(receive)
            left = True
            streaming.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            # Ours (the client left) ends the response; any other cancellation goes on.
            if not left or streaming.uncancel() > 0:
                raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _frames(subscription: Subscription, translator: RunTranslator,
                  metadata: dict[str, Any] | None, *, metrics: ServerMetrics,
                  on_disconnect: Callable[[], None] | None) -> AsyncIterator[bytes]:
    metrics.streams(+1)
    loop = asyncio.get_running_loop()
    written = before = -math.inf  # when frames last went out, and the time before that
    try:
        if metadata is not None:
            metrics.delivered(1)
            yield frame("metadata", metadata)
        while not translator.finished:
            batch = await subscription.receive_batch(timeout=HEARTBEAT_SECONDS)
            if not batch:
                if subscription.closed:
                    break
                yield _HEARTBEAT
                continue
            out, delivered = _translate(batch, translator, metrics)
            # In a burst (the last two writes less than _BURST_SECONDS apart), the rest of
            # the window since the last write gathers what comes meanwhile into the same
            # write: a write (a send and the ASGI chain) costs more than translating a token.
            # A stream's first events, and any after a quiet spell, go at once: a run's first
            # graph event and its model's first token wait for nothing. 10 ms, not less: 50
            # streaming runs make a loop iteration of ~4 ms, one token per run each, so a
            # shorter window gathered nothing and every token was a write of its own
            # (BENCHMARKS.md, tokencpu).
            wait = written + _BURST_SECONDS - loop.time()
            if wait > 0 and written - before < _BURST_SECONDS and not translator.finished:
                await asyncio.sleep(wait)
                if subscription.statistics().pending:
                    more, also = _translate(await subscription.receive_batch(), translator,
                                            metrics)
                    out += more
                    delivered += also
            if delivered:  # counted once per write: the counter takes a lock
                metrics.delivered(delivered)
            if out:
                yield b"".join(out)
                before, written = written, loop.time()
    finally:
        metrics.streams(-1)
        await subscription.aclose()
        if on_disconnect is not None and not translator.finished:
            on_disconnect()


def _translate(batch: list[Event], translator: RunTranslator,
               metrics: ServerMetrics) -> tuple[list[bytes], int]:
    """The frames of `batch`, up to the run's end, and how many of them are events (the
    others are gap comments, counted here)."""
    out: list[bytes] = []
    gaps = 0
    for event in batch:
        if event.type == GAP:
            # Too slow a reader: say so (SDKs ignore comments; a browser sees the gap).
            out.append(b": gap " + orjson.dumps(event.data) + b"\n\n")
            metrics.gap(str(event.data.get("reason")))
            gaps += 1
            continue
        for name, data in translator.frames(event.type, event.data):
            out.append(frame(name, data, event.id))
        if translator.finished:
            break
    return out, len(out) - gaps

"""The SSE handler under hypercorn as well as uvicorn, and the "disconnect" overflow policy.

Each server runs for real on 127.0.0.1 in a thread with its own event loop; clients are
httpx-sse, or raw sockets where a client must stop reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.routing import Route

from chronos.stream import GAP, Broker, BrokerProtocol, Event
from chronos.stream.redis import RedisBroker
from tests.stream.conftest import serve as uvicorn_serve
from tests.stream.redis_helpers import free_port, redis_brokers, unique_prefix
from tests.stream.test_sse_http import read, wait_until

pytestmark = pytest.mark.anyio

Hook = Callable[[], Awaitable[None]]


class Hypercorn:
    """hypercorn in a thread of its own; `before_shutdown` runs when shutdown begins."""

    def __init__(self, app: Starlette, before_shutdown: Hook | None, graceful: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = Config()
        self.config.bind = [f"127.0.0.1:{self.port}"]
        self.config.graceful_timeout = graceful
        self.config.loglevel = "WARNING"
        self.app = app
        self.before_shutdown = before_shutdown
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        # A Starlette app is an ASGI app; hypercorn's annotation is narrower than that.
        app: Any = self.app
        await hypercorn_serve(app, self.config, shutdown_trigger=self._trigger)

    async def _trigger(self) -> None:
        assert self.stopping is not None
        await self.stopping.wait()
        if self.before_shutdown is not None:
            await self.before_shutdown()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while True:
            assert self.thread.is_alive(), "hypercorn failed to start"
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1
            ):
                return
            assert time.monotonic() < deadline, "hypercorn did not start"
            time.sleep(0.02)

    def stop(self, timeout: float = 15) -> None:
        assert self.loop is not None
        assert self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"hypercorn did not stop within {timeout}s"


@contextlib.asynccontextmanager
async def serve(
    kind: str, app: Starlette, before_shutdown: Hook | None = None, graceful: float = 30
) -> AsyncIterator[Any]:
    """`app` under uvicorn or hypercorn on 127.0.0.1; the server has `.url` and `.stop()`."""
    if kind == "uvicorn":
        async with uvicorn_serve(
            app, before_shutdown, timeout_graceful_shutdown=graceful
        ) as running:
            yield running
        return
    server = Hypercorn(app, before_shutdown, graceful)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        if server.thread.is_alive():
            await anyio.to_thread.run_sync(server.stop)


def app_for(broker: BrokerProtocol, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/events", broker.sse_handler(**options)),  # every topic
            Route("/sessions/{topic}/events", broker.sse_handler(**options)),
        ]
    )


@contextlib.asynccontextmanager
async def broker_of(kind: str, **options: Any) -> AsyncIterator[BrokerProtocol]:
    if kind == "memory":
        async with Broker(**options) as broker:
            yield broker
        return
    async with redis_brokers() as brokers:
        brokers.append(RedisBroker(key_prefix=unique_prefix(), **options))
        async with brokers[0]:  # started on this loop: the servers' loops subscribe to it
            yield brokers[0]


async def test_hypercorn_streams_every_event_in_order_and_resumes_exactly() -> None:
    broker = Broker()
    async with (
        serve("hypercorn", app_for(broker)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        async with aconnect_sse(client, "GET", "/sessions/s1/events") as source:
            response = source.response
            assert response.status_code == 200  # headers before any event
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            for i in range(300):
                broker.publish(Event("node_end", {"i": i, "text": "ünï\ncode"}), topic="s1")
                broker.publish(Event("other", i), topic="s2")
            first = await read(source.aiter_sse(), 120)  # then the connection drops
        for i in range(300, 400):
            broker.publish(Event("node_end", {"i": i, "text": "ünï\ncode"}), topic="s1")
        headers = {"Last-Event-ID": first[-1]["id"]}
        async with aconnect_sse(client, "GET", "/sessions/s1/events", headers=headers) as src:
            second = await read(src.aiter_sse(), 280)
    assert [e["data"]["i"] for e in first + second] == list(range(400))
    assert {e["data"]["text"] for e in first + second} == {"ünï\ncode"}
    await wait_until(lambda: broker.statistics().subscriptions == 0)


@pytest.mark.parametrize("graceful", [True, False], ids=["broker-aclose", "server-timeout"])
async def test_hypercorn_shutdown_closes_streams_promptly(graceful: bool) -> None:
    """Closing the broker as shutdown begins ends every stream cleanly; without that,
    hypercorn's `graceful_timeout` cancels the handlers, which still clean up."""
    broker = Broker()
    ended_cleanly: list[bool] = []
    hook = broker.aclose if graceful else None
    # With the hook, a stream that did not end would hold shutdown for 30 s: past fail_after.
    timeout = 30 if graceful else 0.5
    async with (
        serve("hypercorn", app_for(broker), hook, timeout) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):

        async def listen() -> None:
            try:
                async with aconnect_sse(client, "GET", "/sessions/s/events") as source:
                    async for _ in source.aiter_sse():
                        pass
                ended_cleanly.append(True)
            except httpx.RemoteProtocolError:  # the server cut the response short
                ended_cleanly.append(False)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(listen)
                await wait_until(lambda: broker.statistics().subscriptions == 3)
                await anyio.to_thread.run_sync(server.stop)
    assert not server.thread.is_alive()
    assert broker.statistics().subscriptions == 0
    assert ended_cleanly == [graceful] * 3


async def read_body(reader: asyncio.StreamReader) -> list[dict[str, Any]]:
    """The rest of a chunked HTTP/1.1 response, to its end: the JSON of every SSE message."""
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += await reader.readexactly(size + 2)
        del body[-2:]
    await reader.readexactly(2)
    messages = []
    for block in bytes(body).decode().split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            messages.append(json.loads("\n".join(data)))
    return messages


@pytest.mark.parametrize(
    ("server_kind", "broker_kind"),
    [("uvicorn", "memory"), ("uvicorn", "redis"), ("hypercorn", "memory")],
)
async def test_disconnect_policy_drops_a_slow_client_which_resumes_exactly(
    server_kind: str, broker_kind: str
) -> None:
    """overflow="disconnect": a client that falls behind has its response ended (no gap
    event, nothing skipped); reconnecting with the last id it got resumes exactly."""
    total = 4000
    padding = "x" * 4000  # ~16 MB in all: far more than socket and server buffers hold
    async with broker_of(broker_kind, replay_events=total + 10) as broker:
        app = app_for(broker, overflow="disconnect", max_pending=500)
        async with serve(server_kind, app) as server:
            host, port = server.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET /sessions/s/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")  # subscribed; now it stops reading
            assert b"transfer-encoding: chunked" in head.lower(), head
            for i in range(total):
                broker.publish(Event("x", {"i": i, "pad": padding}), topic="s")
            with anyio.fail_after(30):
                messages = await read_body(reader)  # reads again: the response has an end
            writer.close()
            await writer.wait_closed()
            got = [m["data"]["i"] for m in messages if m["type"] == "x"]
            assert GAP not in {m["type"] for m in messages}
            assert got == list(range(len(got)))  # a prefix, in order, nothing skipped
            assert len(got) < total, "the client never fell behind"

            # Like a browser's EventSource: reconnect with the last id until all is there. A
            # backlog larger than `max_pending` takes several connections, each exact.
            rest: list[int] = []
            last_id = messages[-1]["id"]
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                with anyio.fail_after(60):
                    while len(got) + len(rest) < total:
                        headers = {"Last-Event-ID": last_id}
                        async with aconnect_sse(
                            client, "GET", "/sessions/s/events", headers=headers
                        ) as source:
                            async for sse in source.aiter_sse():
                                message = json.loads(sse.data)
                                assert message["type"] == "x", message
                                rest.append(message["data"]["i"])
                                last_id = sse.id
                                if len(got) + len(rest) == total:
                                    break
    assert rest == list(range(len(got), total))


@pytest.mark.parametrize("server_kind", ["uvicorn", "hypercorn"])
async def test_a_stream_of_every_topic_from_redis(server_kind: str) -> None:
    async with (
        broker_of("redis") as broker,
        serve(server_kind, app_for(broker)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        aconnect_sse(client, "GET", "/events") as source,
    ):
        for i in range(90):  # three topics, each new
            broker.publish(Event("x", i), topic=f"session-{i % 3}")
        events = await read(source.aiter_sse(), 90)
    assert [e["data"] for e in events] == list(range(90))
    assert {e["topic"] for e in events} == {"session-0", "session-1", "session-2"}

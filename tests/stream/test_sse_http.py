"""The SSE handler under a real uvicorn on 127.0.0.1, read by real SSE clients (httpx-sse)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import numpy
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from chronos.stream import GAP, Broker, Event
from tests.stream.conftest import serve

pytestmark = pytest.mark.anyio


def app_for(broker: Broker, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/events", broker.sse_handler(**options)),
            Route("/sessions/{topic}/events", broker.sse_handler(**options)),
        ]
    )


@contextlib.asynccontextmanager
async def client_for(app: Starlette, **config: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app`, served by uvicorn on 127.0.0.1."""
    async with serve(app, **config) as server, httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def wait_until(condition: Callable[[], bool], limit: float = 10) -> None:
    # Polling: the condition is the state of a server in another thread, with no event to await.
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def read(events: AsyncIterator[ServerSentEvent], count: int) -> list[dict[str, Any]]:
    """The next `count` messages, as the browser snippet sees them: JSON with a type."""
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async for sse in events:
            assert sse.event == "message"
            payload = json.loads(sse.data)
            assert payload["id"] == sse.id
            received.append(payload)
            if len(received) == count:
                break
    return received


def server_stacks() -> list[str]:
    """uvicorn's pure-Python HTTP parser, and httptools + uvloop when they are installed."""
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return ["h11"]
    return ["h11", "httptools"]


@pytest.mark.parametrize("stack", server_stacks())
async def test_headers_first_then_every_event_in_order(stack: str) -> None:
    broker = Broker()
    loop = "uvloop" if stack == "httptools" else "asyncio"
    async with (
        client_for(app_for(broker), http=stack, loop=loop) as client,
        aconnect_sse(client, "GET", "/events") as source,
    ):
        # Headers arrive before any event has been published.
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        for i in range(300):
            broker.publish(Event("node_end", {"node": "extract", "i": i}))
        events = await read(source.aiter_sse(), 300)
    assert [e["data"]["i"] for e in events] == list(range(300))
    assert {e["type"] for e in events} == {"node_end"}


async def test_reconnect_with_last_event_id_loses_and_repeats_nothing() -> None:
    broker = Broker()
    async with client_for(app_for(broker)) as client:
        async with aconnect_sse(client, "GET", "/sessions/s1/events") as source:
            for i in range(50):
                broker.publish(Event("x", i), topic="s1")
            first = await read(source.aiter_sse(), 30)
        # The connection is gone; events keep coming, some for other topics.
        for i in range(50, 100):
            broker.publish(Event("x", i), topic="s1")
            broker.publish(Event("other", i), topic="s2")
        headers = {"Last-Event-ID": first[-1]["id"]}
        async with aconnect_sse(client, "GET", "/sessions/s1/events", headers=headers) as src:
            second = await read(src.aiter_sse(), 70)
        # Clients that cannot set headers pass the id as a query parameter.
        url = f"/sessions/s1/events?lastEventId={second[9]['id']}"
        async with aconnect_sse(client, "GET", url) as source:
            third = await read(source.aiter_sse(), 60)
    assert [e["data"] for e in first + second] == list(range(100))
    assert [e["data"] for e in third] == list(range(40, 100))


@pytest.mark.parametrize("bad", ["not-an-id", "12", "1-2-3", "x" * 500])
async def test_malformed_last_event_id_is_a_400(bad: str) -> None:
    broker = Broker()
    async with client_for(app_for(broker)) as client:
        response = await client.get("/events", headers={"Last-Event-ID": bad})
        assert response.status_code == 400
        assert "malformed Last-Event-ID" in response.text
        response = await client.get("/events", params={"last_event_id": bad})
        assert response.status_code == 400
    assert broker.statistics().subscriptions == 0


async def test_authorization_hook_decides_which_topics_a_request_reads() -> None:
    owned = {"alice": {"a1", "a2"}}

    async def authorize(request: Request, topics: frozenset[str] | None) -> bool:
        user = request.headers.get("authorization", "").removeprefix("Bearer ")
        if user not in owned:
            raise HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
        return topics is not None and topics <= owned[user]

    broker = Broker()
    alice = {"Authorization": "Bearer alice"}
    async with client_for(app_for(broker, authorize=authorize)) as client:
        response = await client.get("/sessions/a1/events")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        response = await client.get("/sessions/b1/events", headers=alice)
        assert response.status_code == 403
        response = await client.get("/events", headers=alice)  # every topic
        assert response.status_code == 403
        response = await client.get("/events?topic=a1&topic=b1", headers=alice)
        assert response.status_code == 403
        assert broker.statistics().subscriptions == 0
        async with aconnect_sse(
            client, "GET", "/events?topic=a1&topic=a2", headers=alice
        ) as source:
            for topic in ("a1", "b1", "a2"):
                broker.publish(Event("x", topic), topic=topic)
            events = await read(source.aiter_sse(), 2)
    assert [e["data"] for e in events] == ["a1", "a2"]


async def test_disconnect_frees_the_subscription() -> None:
    broker = Broker()
    async with client_for(app_for(broker)) as client:
        for _ in range(3):
            async with aconnect_sse(client, "GET", "/events") as source:
                assert broker.statistics().subscriptions == 1
                broker.publish(Event("x"))
                await read(source.aiter_sse(), 1)
            await wait_until(lambda: broker.statistics().subscriptions == 0)


async def test_slow_client_overflow_is_declared_with_a_gap() -> None:
    """A client that does not read: its oldest events are dropped and counted, nothing else."""
    broker = Broker(max_pending=50)
    total = 3000
    padding = "x" * 2000  # ~6 MB in all: more than the socket buffers hold
    async with serve(app_for(broker)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        await wait_until(lambda: broker.statistics().subscriptions == 1)
        for i in range(total):
            broker.publish(Event("x", {"i": i, "pad": padding}))
        broker.publish(Event("end"))
        buffer = b""
        with anyio.fail_after(30):
            while b'"type":"end"' not in buffer:
                chunk = await reader.read(1 << 20)
                assert chunk, "server closed the stream"
                buffer += chunk
        writer.close()
        await writer.wait_closed()
        await wait_until(lambda: broker.statistics().subscriptions == 0)  # freed at once
    body = buffer.split(b"\r\n\r\n", 1)[1].decode()
    payloads = [
        json.loads(line.removeprefix("data: "))
        for line in body.split("\n")
        if line.startswith("data: ")
    ]
    events = [p for p in payloads if p["type"] == "x"]
    gaps = [p for p in payloads if p["type"] == GAP]
    assert gaps, "the slow client never overflowed"
    assert all(g["data"]["reason"] == "overflow" for g in gaps)
    # Every event is either delivered, in order, or counted in a gap: none vanish.
    assert len(events) + sum(g["data"]["missed"] for g in gaps) == total
    indices = [e["data"]["i"] for e in events]
    assert indices == sorted(indices)
    assert indices[-1] == total - 1


async def test_client_that_stops_reading_is_dropped_after_send_timeout() -> None:
    broker = Broker(max_pending=10)
    async with serve(app_for(broker, send_timeout=0.2)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        await wait_until(lambda: broker.statistics().subscriptions == 1)
        padding = "y" * 10_000
        with anyio.fail_after(30):
            while broker.statistics().subscriptions:
                for _ in range(100):
                    broker.publish(Event("x", padding))
                await anyio.sleep(0.05)
        writer.close()
        await writer.wait_closed()


async def test_one_thousand_concurrent_clients_receive_every_event() -> None:
    broker = Broker()
    clients, count = 1000, 20
    async with serve(app_for(broker)) as server:
        limits = httpx.Limits(max_connections=clients)
        timeout = httpx.Timeout(30)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as c:
            results: list[list[int]] = []
            connected = anyio.Event()

            async def listen() -> None:
                async with aconnect_sse(c, "GET", "/events") as source:
                    if broker.statistics().subscriptions == clients:
                        connected.set()
                    events = await read(source.aiter_sse(), count)
                    results.append([e["data"] for e in events])

            async with anyio.create_task_group() as group:
                for _ in range(clients):
                    group.start_soon(listen)
                await wait_until(lambda: broker.statistics().subscriptions == clients, 60)
                for i in range(count):
                    broker.publish(Event("tick", i))
            # Every client has hung up: every subscription is closed.
            await wait_until(lambda: broker.statistics().subscriptions == 0, 30)
    assert len(results) == clients
    assert all(r == list(range(count)) for r in results)


async def test_closing_the_broker_ends_open_streams() -> None:
    broker = Broker()
    async with client_for(app_for(broker)) as client:

        ended: list[list[ServerSentEvent]] = []

        async def listen() -> None:
            async with aconnect_sse(client, "GET", "/events") as source:
                ended.append([sse async for sse in source.aiter_sse()])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(listen)
                await wait_until(lambda: broker.statistics().subscriptions == 5)
                await broker.aclose()
        assert ended == [[]] * 5  # every stream ended, cleanly, with nothing after the close
        response = await client.get("/events")
        assert response.status_code == 503


@pytest.mark.parametrize("graceful", [True, False], ids=["broker-aclose", "server-timeout"])
async def test_server_shutdown_closes_streams_promptly(graceful: bool) -> None:
    """Closing the broker as shutdown begins ends every stream cleanly; without that,
    uvicorn's `timeout_graceful_shutdown` cancels the handlers, which still clean up."""
    broker = Broker()
    hook = broker.aclose if graceful else None
    ended_cleanly: list[bool] = []
    timeout = 30 if graceful else 0.5
    async with (
        serve(app_for(broker), hook, timeout_graceful_shutdown=timeout) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):

        async def listen() -> None:
            try:
                async with aconnect_sse(client, "GET", "/events") as source:
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


async def test_heartbeat_retry_and_named_events() -> None:
    broker = Broker()
    app = app_for(broker, heartbeat=0.05, retry=1234, named_events=True)
    async with client_for(app) as client, client.stream("GET", "/events") as response:
        chunks = response.aiter_raw()
        text = (await anext(chunks)).decode()
        assert text.startswith("retry: 1234\n")
        while ": heartbeat" not in text:
            text += (await anext(chunks)).decode()
        broker.publish(Event("token", "hi"))
        while "data: " not in text:
            text += (await anext(chunks)).decode()
    assert "\nevent: token\ndata: " in text


async def test_cors() -> None:
    broker = Broker()
    app = app_for(broker, cors_origins=["https://app.example"], cors_credentials=True)
    async with client_for(app) as client:
        preflight = await client.options(
            "/events",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert preflight.status_code == 200  # Starlette's CORSMiddleware answers it
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert preflight.headers["access-control-allow-headers"] == "last-event-id"
        headers = {"Origin": "https://app.example"}
        async with aconnect_sse(client, "GET", "/events", headers=headers) as source:
            assert source.response.headers["access-control-allow-credentials"] == "true"
            assert source.response.headers["access-control-allow-origin"] == headers["Origin"]
        headers = {"Origin": "https://evil.example"}
        async with aconnect_sse(client, "GET", "/events", headers=headers) as source:
            assert "access-control-allow-origin" not in source.response.headers
        refused = await client.options(
            "/events", headers={**headers, "Access-Control-Request-Method": "GET"}
        )
        assert refused.status_code == 400
        response = await client.post("/events")
        assert response.status_code == 405


async def test_fixed_subscription_id_the_newest_connection_wins() -> None:
    broker = Broker()
    app = Starlette(routes=[Route("/events", broker.sse_handler("client-123"))])
    async with (
        client_for(app) as client,
        aconnect_sse(client, "GET", "/events") as first,
        aconnect_sse(client, "GET", "/events") as second,
    ):
        # The first stream ends: its subscription was handed to the second.
        with anyio.fail_after(10):
            assert [sse async for sse in first.aiter_sse()] == []
        broker.publish(Event("x", 1))
        [event] = await read(second.aiter_sse(), 1)
        assert event["data"] == 1
        assert broker.statistics().subscriptions == 1


async def test_mounted_in_fastapi() -> None:
    fastapi = pytest.importorskip("fastapi")
    broker = Broker()
    app = fastapi.FastAPI()
    app.add_route("/events", broker.sse_handler())
    async with client_for(app) as client, aconnect_sse(client, "GET", "/events?topic=t") as source:
        broker.publish(Event("x", "hello"), topic="t")
        [event] = await read(source.aiter_sse(), 1)
    assert (event["type"], event["topic"], event["data"]) == ("x", "t", "hello")


async def test_heartbeats_and_retry_are_invisible_to_sse_clients() -> None:
    # httpx-sse reports an empty message for a blank line after `retry:` or a comment, where
    # browsers report nothing; the handler never sends one.
    broker = Broker()
    async with (
        client_for(app_for(broker, heartbeat=0.02)) as client,
        aconnect_sse(client, "GET", "/events") as source,
    ):
        await anyio.sleep(0.2)  # several heartbeats
        broker.publish(Event("x", 1))
        async for sse in source.aiter_sse():
            assert json.loads(sse.data)["data"] == 1
            assert sse.retry == 3000  # the retry field arrives with the first message
            break


async def test_numpy_event_data_streams_to_every_connection() -> None:
    # Two connections on different topics wake to batches of the same length and type: the
    # handler shares a body between connections by the identity of their events, never by
    # comparing their data, which numpy arrays refuse to answer.
    broker = Broker()
    async with (
        client_for(app_for(broker)) as client,
        aconnect_sse(client, "GET", "/sessions/a/events") as a_source,
        aconnect_sse(client, "GET", "/sessions/b/events") as b_source,
    ):
        await wait_until(lambda: broker.statistics().subscriptions == 2)
        for i in range(20):
            broker.publish(Event("array", numpy.full(3, i)), topic="a")
            broker.publish(Event("array", numpy.full(3, -i) * 1.5), topic="b")
        only_a = await read(a_source.aiter_sse(), 20)
        only_b = await read(b_source.aiter_sse(), 20)
    assert [e["data"] for e in only_a] == [[i, i, i] for i in range(20)]
    assert [e["data"] for e in only_b] == [[-1.5 * i] * 3 for i in range(20)]


async def test_a_connection_asking_for_too_many_topics_gets_a_clear_400() -> None:
    broker = Broker()
    limited = Starlette(routes=[Route("/few", broker.sse_handler(max_topics=3))])
    async with client_for(app_for(broker)) as client:
        query = "&".join(f"topic=t{i}" for i in range(101))
        refused = await client.get(f"/events?{query}")
        assert refused.status_code == 400
        assert refused.text == "101 topics asked for; at most 100 per connection\n"
        assert broker.statistics().subscriptions == 0
        query = "&".join(f"topic=t{i}" for i in range(100))
        async with aconnect_sse(client, "GET", f"/events?{query}") as source:
            await wait_until(lambda: broker.statistics().subscriptions == 1)
            broker.publish(Event("x", 1), topic="t99")
            [event] = await read(source.aiter_sse(), 1)
            assert event["data"] == 1
    async with client_for(limited) as client:
        refused = await client.get("/few?topic=a&topic=b&topic=c&topic=d")
        assert (refused.status_code, refused.text) == (
            400,
            "4 topics asked for; at most 3 per connection\n",
        )
        repeated = "&".join(["topic=a"] * 10)  # one topic, however often it is named
        async with aconnect_sse(client, "GET", f"/few?{repeated}") as source:
            await wait_until(lambda: broker.statistics().subscriptions == 1)
            broker.publish(Event("x", 2), topic="a")
            [event] = await read(source.aiter_sse(), 1)
            assert event["data"] == 2
        await wait_until(lambda: broker.statistics().subscriptions == 0)

"""Slow and stalled clients against the SSE handler under a real uvicorn on 127.0.0.1.

- Slow-loris: request headers sent a byte at a time, or never finished. No subscription exists
  until a request is complete, so a loris costs the broker nothing, and every other client
  streams on undisturbed; a loris that does finish its request gets an ordinary stream.
- Header flood: a request whose headers never end is cut off by the HTTP parser.
- A client that never reads: once its socket buffers are full, the server's writes to it
  block; after `send_timeout` the handler drops it and frees its subscription, while another
  reader of the same topic receives every event, and the publisher is never held up. Closing
  the broker ends its stream within `send_timeout` too, so it cannot hold up a shutdown.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chronos.stream import GAP, Broker, Event
from tests.stream.conftest import Server, serve
from tests.stream.test_sse_http import server_stacks, wait_until

pytestmark = pytest.mark.anyio


class Counted:
    """An ASGI app wrapped to count its calls still running."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1


def app_for(broker: Broker, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/events", broker.sse_handler(**options)),
            Route("/sessions/{topic}/events", broker.sse_handler(**options)),
        ]
    )


def uvicorn_config(stack: str) -> dict[str, Any]:
    return {"http": stack, "loop": "uvloop" if stack == "httptools" else "asyncio"}


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


async def raw_socket(server: Server, receive_buffer: int | None = None) -> socket.socket:
    """A connected non-blocking socket; `receive_buffer` shrinks its TCP receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting: the window scale is fixed then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address(server))
    return sock


def peek(sock: socket.socket) -> bytes:
    """What has arrived on `sock`, left there to be read."""
    try:
        return sock.recv(1 << 16, socket.MSG_PEEK)
    except BlockingIOError:
        return b""


async def read_until_closed(sock: socket.socket, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after `limit` s)."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    with anyio.fail_after(limit):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


async def sse_payloads(source: AsyncIterator[ServerSentEvent]) -> AsyncIterator[dict[str, Any]]:
    async for sse in source:
        yield json.loads(sse.data)


@pytest.mark.parametrize("stack", server_stacks())
async def test_slow_loris_holds_no_subscription_and_slows_no_one(stack: str) -> None:
    broker = Broker()
    loop = asyncio.get_running_loop()
    async with serve(app_for(broker), **uvicorn_config(stack)) as server:
        host, _ = address(server)
        request = f"GET /sessions/s/events HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
        lorises = [await raw_socket(server) for _ in range(20)]
        # The request line and a header, a byte at a time, from every loris at once.
        for byte in request:
            for sock in lorises:
                await loop.sock_sendall(sock, bytes([byte]))
            await anyio.sleep(0.002)
        stop = anyio.Event()

        async def dribble(sock: socket.socket) -> None:
            # A header value that never ends, a byte every 50 ms.
            while not stop.is_set():
                await loop.sock_sendall(sock, b"a")
                await anyio.sleep(0.05)

        async with (
            anyio.create_task_group() as group,
            httpx.AsyncClient(base_url=server.url) as client,
            aconnect_sse(client, "GET", "/sessions/s/events") as source,
        ):
            for sock in lorises:
                group.start_soon(dribble, sock)
            received: list[int] = []
            for i in range(300):
                broker.publish(Event("x", i), topic="s")
                if i % 10 == 9:
                    await anyio.sleep(0.01)  # the lorises keep dribbling meanwhile
                    assert broker.statistics().subscriptions == 1
            with anyio.fail_after(20):
                async for payload in sse_payloads(source.aiter_sse()):
                    received.append(payload["data"])
                    if len(received) == 300:
                        break
            assert received == list(range(300))
            stop.set()
        await wait_until(lambda: broker.statistics().subscriptions == 0)

        # A loris that finishes its request, however slowly, gets an ordinary stream.
        finisher = lorises.pop()
        for byte in b"\r\n\r\n":
            await loop.sock_sendall(finisher, bytes([byte]))
            await anyio.sleep(0.05)
        await wait_until(lambda: broker.statistics().subscriptions == 1)
        broker.publish(Event("x", "late"), topic="s")
        answer = b""
        with anyio.fail_after(10):
            while b'"data":"late"' not in answer:
                chunk = await loop.sock_recv(finisher, 1 << 16)
                assert chunk, "the server closed the finished request's stream"
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")
        finisher.close()
        await wait_until(lambda: broker.statistics().subscriptions == 0)
        for sock in lorises:
            sock.close()


def flood_stacks() -> list[object]:
    return [
        pytest.param(
            stack,
            marks=pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="uvicorn on httptools buffers request headers without a limit "
                "(h11 stops at 16 KiB): put a proxy with header limits in front",
            ),
        )
        if stack == "httptools"
        else stack
        for stack in server_stacks()
    ]


@pytest.mark.parametrize("stack", flood_stacks())
async def test_endless_request_headers_are_cut_off(stack: str) -> None:
    broker = Broker()
    loop = asyncio.get_running_loop()
    async with serve(app_for(broker), **uvicorn_config(stack)) as server:
        flood = await raw_socket(server)
        await loop.sock_sendall(flood, b"GET /events HTTP/1.1\r\nHost: x\r\nX-Flood: ")
        # 16 MiB: far more than the socket buffers on both ends hold.
        sent, limit = 0, 16 << 20
        with anyio.fail_after(60):
            try:
                while sent < limit:
                    await loop.sock_sendall(flood, b"a" * (64 << 10))
                    sent += 64 << 10
            except (ConnectionResetError, BrokenPipeError):
                pass
        assert sent < limit, f"the server read {limit} bytes of one header and asked for more"
        answer = await read_until_closed(flood, 10)
        flood.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
        assert broker.statistics().subscriptions == 0


@pytest.mark.parametrize("stack", server_stacks())
async def test_client_that_never_reads_is_dropped_while_others_get_everything(
    stack: str,
) -> None:
    broker = Broker()
    padding = "p" * 1000
    app = app_for(broker, send_timeout=1.0)
    async with serve(app, **uvicorn_config(stack)) as server:
        host, _ = address(server)
        loop = asyncio.get_running_loop()
        stalled = await raw_socket(server, receive_buffer=4096)
        await loop.sock_sendall(
            stalled, f"GET /sessions/s/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        await wait_until(lambda: broker.statistics().subscriptions == 1)
        received: list[int] = []
        gaps: list[dict[str, Any]] = []
        # The publisher may run at most 200 events ahead of the reader, so that the reader
        # never falls behind itself: every event it misses would be the stalled client's doing.
        credit = anyio.Semaphore(200)
        published = 0
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            aconnect_sse(client, "GET", "/sessions/s/events") as source,
            anyio.create_task_group() as group,
        ):
            await wait_until(lambda: broker.statistics().subscriptions == 2)

            async def read() -> None:
                async for payload in sse_payloads(source.aiter_sse()):
                    if payload["type"] == GAP:
                        gaps.append(payload)
                    elif payload["type"] == "end":
                        return
                    else:
                        received.append(payload["data"]["i"])
                        credit.release()

            group.start_soon(read)
            with anyio.fail_after(60):
                # Publish until the stalled client is dropped, then as much again.
                dropped_at = None
                while dropped_at is None or published < 2 * dropped_at:
                    await credit.acquire()
                    broker.publish(Event("x", {"i": published, "pad": padding}), "s")
                    published += 1
                    if dropped_at is None and broker.statistics().subscriptions == 1:
                        dropped_at = published
                broker.publish(Event("end"), "s")
        assert received == list(range(published))
        assert not gaps
        # The server closed the stalled connection: what it had buffered, then the end.
        answer = await read_until_closed(stalled, 10)
        stalled.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.count(b"data: ") < published
    assert broker.statistics().subscriptions == 0


@pytest.mark.parametrize("stack", server_stacks())
async def test_closing_the_broker_ends_the_stream_of_a_client_that_never_reads(
    stack: str,
) -> None:
    broker = Broker()
    handler = Counted(broker.sse_handler(send_timeout=0.5))
    app = Starlette(routes=[Route("/events", handler)])
    async with serve(app, **uvicorn_config(stack)) as server:
        host, _ = address(server)
        loop = asyncio.get_running_loop()
        stalled = await raw_socket(server, receive_buffer=4096)
        await loop.sock_sendall(stalled, f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await wait_until(lambda: broker.statistics().subscriptions == 1)
        # One event larger than every buffer between the two: the write of it returns (the
        # transport buffers it) and leaves the connection over its high-water mark, the
        # handler waiting for the next event.
        broker.publish(Event("big", "b" * (4 << 20)))
        with anyio.fail_after(10):
            while b'"type":"big"' not in peek(stalled):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await broker.aclose()
        # Ending the response is one more write to a client that does not read: bounded too.
        await wait_until(lambda: handler.running == 0)
        stalled.close()

"""A provider's requests to a plain `http://` server (a local model's): asyncio's transports,
writes that leave at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest

from chronos.errors import ProviderConnectionError
from chronos.model import ChatRequest, Message, OpenAIProvider, RetryPolicy, accumulate
from chronos.model._plain_http import plain_http_client
from tests.model.replay import read_request

REQ = ChatRequest(messages=[Message(role="user", content="Hi")])
ANSWER = (b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},'
          b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


@pytest.mark.anyio
async def test_a_write_does_not_wait_for_the_loop() -> None:
    # httpcore's default streams yield to the loop after each write: the request's body then
    # waits for everything queued meanwhile (on a served run: the rest of the request's work).
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with plain_http_client(httpx.Timeout(5)) as client:
            pool = client._transport._pool  # type: ignore[attr-defined]
            stream = await pool._network_backend.connect_tcp("127.0.0.1", port)
            ran: list[int] = []
            loop.call_soon(ran.append, 1)
            await stream.write(b"head")
            await stream.write(b"body")
            assert ran == []
            await stream.aclose()
    finally:
        server.close()


@pytest.mark.anyio
async def test_the_request_head_and_body_reach_the_server_together() -> None:
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)

    async def serve() -> bytes:
        connection, _ = await loop.sock_accept(listener)
        with connection:
            first = await loop.sock_recv(connection, 65536)
            received = first
            while not received.endswith(b"}"):  # the JSON body's end
                received += await loop.sock_recv(connection, 65536)
            await loop.sock_sendall(connection, b"HTTP/1.1 200 OK\r\ncontent-type: "
                                    b"text/event-stream\r\nconnection: close\r\n\r\n" + ANSWER)
        return first

    server = asyncio.create_task(serve())
    try:
        async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
                                  api_key="k") as provider:
            assert (await accumulate(provider.stream_chat(REQ))).content == "Hi"
        first = await server
    finally:
        server.cancel()
        listener.close()
    assert first.startswith(b"POST /chat/completions HTTP/1.1\r\n")
    assert first.endswith(b"}")
    assert b'"messages":[{"role":"user","content":"Hi"}]' in first


@pytest.mark.anyio
async def test_a_server_that_is_not_listening_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}", api_key="k",
                              retry=RetryPolicy(max_retries=0)) as provider:
        with pytest.raises(ProviderConnectionError, match="cannot reach the server"):
            await accumulate(provider.stream_chat(REQ))


@pytest.mark.anyio
async def test_a_server_closing_each_connection_is_connected_to_anew() -> None:
    # As llama.cpp's server does after each streamed answer: the pool must not reuse it.
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                     % (len(ANSWER), ANSWER))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}", api_key="k",
                                  retry=RetryPolicy(max_retries=0)) as provider:
            for _ in range(3):
                assert (await accumulate(provider.stream_chat(REQ))).content == "Hi"
                await asyncio.sleep(0.01)  # the server's close arrives
    finally:
        server.close()
    assert connections == 3


async def _keep_alive_server(connections: list[int]) -> asyncio.Server:
    """Answers every request of a connection, keeping it open between them."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.anyio
async def test_a_server_keeping_connections_alive_is_asked_again_on_the_same_one() -> None:
    connections: list[int] = []
    server = await _keep_alive_server(connections)
    port = server.sockets[0].getsockname()[1]
    try:
        async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}", api_key="k",
                                  retry=RetryPolicy(max_retries=0)) as provider:
            for _ in range(3):
                assert (await accumulate(provider.stream_chat(REQ))).content == "Hi"
            # Two at once: the second opens a connection of its own.
            both = await asyncio.gather(*(accumulate(provider.stream_chat(REQ))
                                          for _ in range(2)))
            assert [r.content for r in both] == ["Hi", "Hi"]
    finally:
        server.close()
    assert len(connections) == 2


@pytest.mark.anyio
async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")  # kept alive...
        await writer.drain()
        writer.close()  # ...until its idle timeout, here at once

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        async with plain_http_client(httpx.Timeout(5)) as client:
            for _ in range(2):
                assert (await client.get(url)).text == "ok"
                await asyncio.sleep(0.05)  # the server's close arrives
    finally:
        server.close()
    assert len(connections) == 2

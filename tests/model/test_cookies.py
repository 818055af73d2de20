"""A provider's own client keeps the cookies its server sets, as httpx's does, and sends them."""

from __future__ import annotations

import asyncio

import pytest

from chronos.model import ChatRequest, Message, OpenAIProvider
from tests.model.replay import read_request

REQ = ChatRequest(messages=[Message(role="user", content="Hi")])
BODY = (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n")


@pytest.mark.anyio
@pytest.mark.parametrize("header", [b"Set-Cookie", b"set-cookie"])
async def test_a_cookie_the_server_sets_goes_back_with_the_next_requests(header: bytes) -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                heads.append((await read_request(reader)).lower())
                cookie = header + b": sticky=a1; Path=/\r\n" if len(heads) == 1 else b""
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + cookie
                             + b"content-length: %d\r\n\r\n" % len(BODY) + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}/v1",
                                  api_key="k") as provider:
            for _ in range(3):  # the third's answer sets none: the cookie stays
                assert (await provider.chat(REQ)).content == "Hi"
    finally:
        server.close()
        await server.wait_closed()
    assert [b"cookie: sticky=a1" in head for head in heads] == [False, True, True]

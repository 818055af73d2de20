"""After a stream's terminal event the connection goes back to the pool, within limits."""

from __future__ import annotations

import asyncio
import json

import pytest

from chronos.model import AnthropicProvider, ChatRequest, Message, OpenAIProvider, accumulate
from tests.model.replay import ReplayServer, Reply, read_request

REQ = ChatRequest(messages=[Message(role="user", content="Hi")])
EVENTS = [
    {"type": "message_start", "message": {"id": "m", "model": "claude-x", "usage": {}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
    {"type": "message_stop"},
]
FRAMES = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in EVENTS]
# One chunked-encoding frame per event, the terminator in a write of its own, as servers do.
BODY = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in FRAMES)


@pytest.mark.anyio
async def test_consecutive_streams_share_one_connection() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n" + BODY)
                await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AnthropicProvider("claude-x", base_url=f"http://127.0.0.1:{port}",
                                     api_key="k") as provider:
            for _ in range(3):
                assert (await provider.chat(REQ)).content == "Hi"
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 1


@pytest.mark.anyio
async def test_a_body_held_open_after_done_is_cut_off(replay_server: ReplayServer) -> None:
    # The body never ends after [DONE]: the stream still ends, and the connection is dropped.
    story = (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}'
             b"\n\ndata: [DONE]\n\n")
    script = replay_server.script(Reply(body=story, end="stall"))
    async with OpenAIProvider("m", base_url=script.base_url, api_key="k") as provider:
        assert (await accumulate(provider.stream_chat(REQ))).content == "Hi"
    assert script.exchanges[0].client_left.wait(10)

"""A real HTTP/1.1 server on 127.0.0.1 that replays scripted responses, for provider tests.

It runs on its own event loop in a daemon thread (as httpx's test suite runs uvicorn), speaks
raw HTTP over asyncio streams so faults can be staged exactly: the body goes out as chunked
transfer-encoding pieces cut at seeded random byte positions (inside UTF-8 characters, inside
lines, between CR and LF), optionally with a pause between pieces; the connection can be
dropped mid-body, or the server can stall until the client gives up. It records each request
and whether the client disconnected before the response was complete.

```python
script = replay_server.script(Reply(body=b"data: ...\\n\\n"), Reply(status=429))
provider = OpenAIProvider(base_url=script.base_url, api_key="test")
...
script.exchanges[0].path; script.exchanges[0].client_left.is_set()
```
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Exchange", "ReplayServer", "Reply", "Script", "read_request", "split_at_random"]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request from `reader`: its head and its body (as its content-length says),
    for the tests' own servers that shape their connections as the replay server does not."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


def split_at_random(body: bytes, seed: int, max_piece: int = 48) -> list[bytes]:
    """Cut `body` into pieces of 1..max_piece bytes at positions chosen by `seed`."""
    rng = random.Random(seed)
    pieces = []
    pos = 0
    while pos < len(body):
        size = rng.randint(1, max_piece)
        pieces.append(body[pos : pos + size])
        pos += size
    return pieces


@dataclass
class Reply:
    """One scripted response.

    `end`: "complete" sends the whole body properly; "abrupt" closes the connection after
    the pieces without ending the chunked body; "stall" sends the pieces and then nothing,
    keeping the connection open until the client leaves. `body_for`, when set, computes the
    body from the request instead (a server that answers what it is asked, e.g. a resume).
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"content-type": "text/event-stream"}
    )
    seed: int = 0
    max_piece: int = 48
    pause: float = 0.0
    end: Literal["complete", "abrupt", "stall"] = "complete"
    body_for: Callable[[Exchange], bytes] | None = None


@dataclass
class Exchange:
    """A request the server received, and what became of its response."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_left: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class Script:
    """Replies served in order to requests under `base_url`; `exchanges` records them."""

    base_url: str
    prefix: str
    replies: collections.deque[Reply]
    exchanges: list[Exchange] = field(default_factory=list)


class ReplayServer:
    """The server; start it once per test session."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self._ids = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def script(self, *replies: Reply) -> Script:
        """Register replies; requests to the returned `base_url` (and below) get them."""
        prefix = f"/s{next(self._ids)}"
        script = Script(f"http://127.0.0.1:{self.port}{prefix}", prefix, collections.deque(replies))
        self._scripts[prefix] = script
        return script

    def close(self) -> None:
        """Stop the server and its thread."""
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        exchange: Exchange | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            exchange = Exchange(method, path, headers, body)
            script = self._scripts.get("/" + path.split("/", 2)[1])
            if script is None or not script.replies:
                writer.write(b"HTTP/1.1 500 No Script\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            script.exchanges.append(exchange)
            await self._respond(script.replies.popleft(), exchange, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            if exchange is not None:
                exchange.client_left.set()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _respond(
        self,
        reply: Reply,
        exchange: Exchange,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        async def watch() -> None:
            # The client sends nothing more; EOF or reset means it went away.
            with contextlib.suppress(ConnectionError):
                await reader.read()
            if not exchange.finished.is_set():
                exchange.client_left.set()

        watcher = asyncio.create_task(watch())
        try:
            head = [f"HTTP/1.1 {reply.status} Replay"]
            head += [f"{name}: {value}" for name, value in reply.headers.items()]
            head += ["transfer-encoding: chunked", "connection: close", "", ""]
            writer.write("\r\n".join(head).encode("latin-1"))
            body = reply.body if reply.body_for is None else reply.body_for(exchange)
            for piece in split_at_random(body, reply.seed, reply.max_piece):
                if exchange.client_left.is_set():
                    return
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                if reply.pause:
                    await asyncio.sleep(reply.pause)
            if reply.end == "stall":
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(watcher), 30)
                return
            if reply.end == "complete":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                exchange.finished.set()
        finally:
            if not watcher.done():
                watcher.cancel()

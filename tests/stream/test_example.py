"""examples/sse_broker.py runs as written and streams what it publishes."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.stream.test_browser import SNIPPET

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[2] / "examples" / "sse_broker.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_page_holds_the_guides_snippet() -> None:
    assert SNIPPET in EXAMPLE.read_text()


async def test_the_example_streams_every_event_then_exits() -> None:
    port = free_port()
    command = [sys.executable, str(EXAMPLE), "--port", str(port)]
    command += ["--events", "30", "--interval", "0.05"]
    received: list[dict[str, object]] = []
    async with await anyio.open_process(command, stderr=None) as process:
        try:
            async with httpx.AsyncClient() as client:
                with anyio.fail_after(30):
                    while True:  # until the server is up
                        try:
                            await client.get(f"http://127.0.0.1:{port}/")
                            break
                        except httpx.ConnectError:
                            await anyio.sleep(0.05)
                    # Start from the beginning: the broker replays what it still holds, after
                    # a gap marker saying the very beginning is not retained.
                    url = f"http://127.0.0.1:{port}/events?lastEventId=0-0"
                    async with aconnect_sse(client, "GET", url) as source:
                        async for sse in source.aiter_sse():
                            received.append(json.loads(sse.data))
                    # The stream ended because the example finished and closed its broker.
                    await process.wait()
                    assert process.stdout is not None
                    stdout = b"".join([chunk async for chunk in process.stdout]).decode()
        finally:
            if process.returncode is None:
                process.kill()
    assert process.returncode == 0
    assert received[0]["type"] == "gap"
    events = received[1:]
    assert [e["data"]["n"] for e in events] == list(range(30))  # type: ignore[index]
    assert events[0] == {
        "id": events[0]["id"],
        "type": "node_start",
        "topic": "default",
        "data": {"node": "extract", "status": "running", "n": 0},
    }
    printed = [line for line in stdout.splitlines() if line.startswith("[")]
    assert printed[:2] == [
        "[node_start] {'node': 'extract', 'status': 'running', 'n': 0}",
        "[node_end] {'node': 'extract', 'status': 'done', 'n': 1}",
    ]
    assert len(printed) == 30

"""The demo's test parts: a model that streams over real HTTP, and readers of a run's events."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse

from chronos.demo import DemoApp
from chronos.model.openai import OpenAIProvider
from tests.cli.command import CHRONOS, environment
from tests.model.replay import ReplayServer, Reply
from tests.stream.conftest import Server, serve

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")
TERMINAL = frozenset({"completed", "error", "cancelled"})
WORDS = [f"word{n} " for n in range(24)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def openai_stream(words: Iterable[str], usage: Mapping[str, Any] | None = None) -> bytes:
    """An OpenAI-compatible chat completion stream saying `words`, one chunk each; `usage`
    comes on a closing chunk of its own, as with `stream_options.include_usage`."""
    chunks = [{"content": word} for word in words]
    events: list[dict[str, Any]] = [
        {"id": "r1", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        for delta in [{"role": "assistant"}, *chunks]
    ]
    events.append({"id": "r1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        events.append({"id": "r1", "choices": [], "usage": usage})
    body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    return body + b"data: [DONE]\n\n"


def model_saying(replay_server: ReplayServer, *replies: Reply) -> OpenAIProvider:
    """A provider whose successive requests get `replies` from the replay server."""
    script = replay_server.script(*replies)
    return OpenAIProvider("scripted", base_url=script.base_url + "/v1", api_key="test")


def drafts(
    *texts: Sequence[str], pause: float = 0.0, usage: Mapping[str, Any] | None = None
) -> list[Reply]:
    """One streamed reply per draft, each saying its words (in pieces `pause` s apart)."""
    return [Reply(body=openai_stream(words, usage), pause=pause, max_piece=96)
            for words in texts]


@contextmanager
def chronos_demo(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`chronos demo --port 0 ARGS` in `cwd` (where its SQLite store goes), and its URL."""
    process = subprocess.Popen(
        [str(CHRONOS), "demo", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=environment(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the server accepts requests
        found = URL.search(line)
        if found is None:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"no URL in {line!r}; stderr: {stderr}")
        try:
            yield process, found.group(0)
        except httpx.TransportError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = process.wait(10)
                stderr = process.stderr.read() if process.stderr else ""
                pytest.fail(f"chronos demo died, exit status {status}: {stderr[-2000:]}")
            raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def running(app: DemoApp) -> AsyncIterator[Server]:
    """`app` under uvicorn on a free port, its lifespan on, closed as shutdown begins."""
    async with serve(app, app.aclose, lifespan="on") as server:
        yield server


async def read_events(
    client: httpx.AsyncClient,
    session_id: str,
    *,
    until: Iterable[str] = TERMINAL,
    last_event_id: str | None = None,
    in_query: bool = False,
) -> list[dict[str, Any]]:
    """The session's events over SSE, up to and including the first of type `until`.

    `last_event_id` goes in the `Last-Event-ID` header, or with `in_query` in the query.
    """
    stop = frozenset(until)
    headers, params = {}, {}
    if last_event_id and in_query:
        params["last_event_id"] = last_event_id
    elif last_event_id:
        headers["Last-Event-ID"] = last_event_id
    events: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        async with aconnect_sse(
            client, "GET", f"/runs/{session_id}/events", headers=headers, params=params,
            timeout=httpx.Timeout(10, read=None),  # a model may think long: fail_after bounds it
        ) as source:
            async for sse in source.aiter_sse():
                event = orjson.loads(sse.data)
                assert event["id"] == sse.id  # the SSE id is the one to resume after
                events.append(event)
                if event["type"] in stop:
                    break
    return events


def streamed_text(events: Iterable[dict[str, Any]]) -> str:
    return "".join(e["data"]["data"]["content"] for e in events if e["type"] == "token")

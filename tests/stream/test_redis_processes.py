"""Two uvicorn processes sharing the real Redis: events cross processes, resumes are exact."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.stream.redis_helpers import (
    REDIS_URL,
    delete_prefix,
    free_port,
    require_redis,
    unique_prefix,
)

pytestmark = pytest.mark.anyio

APP = Path(__file__).with_name("redis_app.py")
ROOT = Path(__file__).parents[2]


@contextlib.contextmanager
def server_process(prefix: str) -> Iterator[str]:
    """Start `redis_app.py` in a process of its own; yield its URL; stop it by its pid."""
    port = free_port()
    env = dict(os.environ, CHRONOS_BROKER_URL=REDIS_URL, CHRONOS_TEST_PREFIX=prefix)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    process = subprocess.Popen([sys.executable, str(APP), str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "the server process exited"
            assert time.monotonic() < deadline, "the server process did not start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def test_events_cross_processes_and_resume_exactly_on_another() -> None:
    require_redis()
    prefix = unique_prefix()
    try:
        with server_process(prefix) as a, server_process(prefix) as b:
            async with httpx.AsyncClient(timeout=10) as client:
                received: list[tuple[str, int]] = []
                with anyio.fail_after(30):
                    async with aconnect_sse(client, "GET", f"{b}/events/run-1") as source:
                        assert source.response.status_code == 200
                        # Headers arrive after B subscribed: publish 100 events on A.
                        response = await client.post(f"{a}/publish/run-1?start=0&count=100")
                        assert response.status_code == 200
                        async for sse in source.aiter_sse():
                            body = sse.json()
                            received.append((sse.id, body["data"]["i"]))
                            if len(received) == 40:
                                break  # the client drops mid-stream
                    assert [i for _, i in received] == list(range(40))
                    last_id = received[-1][0]
                    rest: list[int] = []
                    headers = {"Last-Event-ID": last_id}
                    async with aconnect_sse(
                        client, "GET", f"{a}/events/run-1", headers=headers
                    ) as source:
                        async for sse in source.aiter_sse():
                            rest.append(sse.json()["data"]["i"])
                            if len(rest) == 60:
                                break
                    assert rest == list(range(40, 100))
    finally:
        await delete_prefix(prefix)


async def test_a_graph_run_in_one_process_streams_to_a_client_of_another() -> None:
    require_redis()
    prefix = unique_prefix()
    try:
        with server_process(prefix) as a, server_process(prefix) as b:
            async with httpx.AsyncClient(timeout=10) as client:
                events: list[dict[str, Any]] = []
                with anyio.fail_after(30):
                    async with aconnect_sse(client, "GET", f"{b}/events/session-7") as source:
                        response = await client.post(f"{a}/run/session-7")
                        assert response.text == "completed"
                        async for sse in source.aiter_sse():
                            events.append(sse.json())
                            if events[-1]["type"] == "completed":
                                break
                types = [e["type"] for e in events]
                assert types[0] == "node_start"
                assert [e["data"]["data"] for e in events if e["type"] == "token"] == [
                    "a",
                    "robot",
                    "story",
                ]
                assert "node_end" in types
                seqs = [e["data"]["seq"] for e in events]
                assert seqs == sorted(seqs)  # in the order the run emitted them
                assert {e["data"]["session_id"] for e in events} == {"session-7"}
    finally:
        await delete_prefix(prefix)

"""Two uvicorn processes sharing the real Redis: events cross processes, resumes are exact.

A run killed with SIGKILL in one process and resumed in another (PostgreSQL checkpoints and
lease) is `tests/graph/test_crash_recovery.py::test_sigkill_mid_node_then_resume_in_a_new_process`.
"""

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

from chronos.store import PostgresStore
from tests.store.backends import POSTGRES_URL, unique_table
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
def server_process(prefix: str, table: str | None = None) -> Iterator[str]:
    """Start `redis_app.py` in a process of its own; yield its URL; stop it by its pid."""
    port = free_port()
    env = dict(os.environ, CHRONOS_BROKER_URL=REDIS_URL, CHRONOS_TEST_PREFIX=prefix)
    if table is not None:
        env.update(CHRONOS_TEST_TABLE=table, CHRONOS_TEST_POSTGRES=POSTGRES_URL)
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


async def test_a_run_paused_on_one_process_resumed_on_another_streams_whole() -> None:
    # A runs the graph up to its interrupt node; B, which never saw the run, resumes it from
    # the PostgreSQL checkpoint under the lease. One client of B sees both halves, in order.
    require_redis()
    prefix, table = unique_prefix(), unique_table()
    try:
        with server_process(prefix, table) as a, server_process(prefix, table) as b:
            async with httpx.AsyncClient(timeout=10) as client:
                pid_a = int((await client.get(f"{a}/health")).text)
                pid_b = int((await client.get(f"{b}/health")).text)
                events: list[tuple[str, dict[str, Any]]] = []
                with anyio.fail_after(40):
                    async with aconnect_sse(client, "GET", f"{b}/events/review-1") as source:
                        stream = source.aiter_sse()
                        response = await client.post(f"{a}/review/review-1")
                        assert response.text == "paused"
                        async for sse in stream:
                            events.append((sse.id, sse.json()))
                            if events[-1][1]["type"] == "interrupt":
                                break
                        response = await client.post(f"{b}/review/review-1/resume")
                        assert response.text == "completed"
                        async for sse in stream:
                            events.append((sse.id, sse.json()))
                            if events[-1][1]["type"] == "completed":
                                break
    finally:
        await delete_prefix(prefix)
        async with PostgresStore(POSTGRES_URL, table=table) as store:
            await store.drop_table()

    ids = [id for id, _ in events]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda id: tuple(int(n) for n in id.split("-")))
    bodies = [body for _, body in events]
    assert "gap" not in {e["type"] for e in bodies}
    runs = list(dict.fromkeys(e["data"]["run_id"] for e in bodies))
    assert len(runs) == 2  # the paused run on A, the resumed one on B
    for run_id in runs:  # every event of each run, none twice: its seqs are 1..n
        seqs = [e["data"]["seq"] for e in bodies if e["data"]["run_id"] == run_id]
        assert seqs == list(range(1, len(seqs) + 1))
    first = [e for e in bodies if e["data"]["run_id"] == runs[0]]
    second = [e for e in bodies if e["data"]["run_id"] == runs[1]]
    assert first[-1]["type"] == "interrupt"
    assert [e["data"]["data"] for e in first if e["type"] == "token"] == ["a", "draft"]
    assert [e["data"]["data"] for e in second if e["type"] == "token"] == [
        "approved",
        "and",
        "published",
    ]
    final = second[-1]["data"]["state"]
    assert (final["drafted_by"], final["approved_by"]) == (pid_a, pid_b)
    assert final["published"] == "a draft"

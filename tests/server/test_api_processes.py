"""Several server processes sharing Redis and PostgreSQL: a run started through one is joined,
streamed, cancelled and resumed through another, and `--workers 2` serves one port."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client

from tests.server.api_server import Served, serving
from tests.store.backends import POSTGRES_URL

pytestmark = pytest.mark.anyio

_SHARED = ("--broker", "redis://127.0.0.1:6379/0")
_GRAPHS = ("tests.server.api_graphs:agent", "tests.server.api_graphs:asking")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def two() -> Iterator[tuple[Served, Served]]:
    with serving(*_GRAPHS, store=POSTGRES_URL, options=_SHARED) as first, \
            serving(*_GRAPHS, store=POSTGRES_URL, options=_SHARED) as second:
        yield first, second


async def _status(client: object, thread_id: str, run_id: str) -> str:
    return str((await client.runs.get(thread_id, run_id))["status"])  # type: ignore[attr-defined]


async def test_a_run_started_on_one_process_is_streamed_and_joined_on_another(
    two: tuple[Served, Served],
) -> None:
    a, b = (get_client(url=s.url) for s in two)
    thread = (await a.threads.create())["thread_id"]
    run = await a.runs.create(thread, "agent", input={"steps": [], "delay": 1},
                              stream_mode="updates")
    assert (await b.threads.get(thread))["thread_id"] == thread
    streamed = [(p.event, p.data) async for p in b.runs.join_stream(thread, run["run_id"])]
    assert streamed[-1] == ("updates", {"review": {"steps": ["review"]}})
    assert (await b.runs.join(thread, run["run_id"]))["steps"] == ["plan", "write", "review"]
    assert await _status(a, thread, run["run_id"]) == "success"
    assert (await b.threads.get_state(thread))["values"]["text"] == "Once upon a time"


async def test_a_run_executing_on_one_process_is_cancelled_through_another(
    two: tuple[Served, Served],
) -> None:
    a, b = (get_client(url=s.url) for s in two)
    thread = (await a.threads.create())["thread_id"]
    run = await a.runs.create(thread, "agent", input={"steps": [], "delay": 30})
    for _ in range(500):
        if await _status(b, thread, run["run_id"]) == "running":
            break
        await asyncio.sleep(0.02)
    await b.runs.cancel(thread, run["run_id"], wait=True)
    assert await _status(a, thread, run["run_id"]) == "interrupted"
    assert (await a.threads.get(thread))["status"] == "idle"


async def test_an_interrupt_on_one_process_is_resumed_through_another(
    two: tuple[Served, Served],
) -> None:
    a, b = (get_client(url=s.url) for s in two)
    thread = (await a.threads.create())["thread_id"]
    await a.runs.wait(thread, "asking", input={"topic": "tea"})
    state = await b.threads.get_state(thread)
    assert state["interrupts"][0]["value"] == {"question": "publish tea?"}
    values = await b.runs.wait(thread, "asking", command={"resume": "yes"})
    assert values["answer"] == "yes"
    assert (await a.threads.get_state(thread))["next"] == []


async def test_the_runs_of_a_killed_process_fail_instead_of_running_forever(
    two: tuple[Served, Served],
) -> None:
    a, b = (get_client(url=s.url) for s in two)
    with serving(*_GRAPHS, store=POSTGRES_URL, options=_SHARED) as doomed:
        victim = get_client(url=doomed.url)
        thread = (await victim.threads.create())["thread_id"]
        run = await victim.runs.create(thread, "agent", input={"steps": [], "delay": 60})
        queued = await victim.runs.create(thread, "agent", input=None,
                                          multitask_strategy="enqueue")
        for _ in range(500):
            if await _status(a, thread, run["run_id"]) == "running":
                break
            await asyncio.sleep(0.02)
        os.kill(doomed.pid, signal.SIGKILL)
    # The other processes notice within the heartbeat's lifetime (10 s) and fail both runs;
    # a `join` waiting on another process ends with them.
    joined = await asyncio.wait_for(b.runs.join(thread, run["run_id"]), timeout=30)
    assert joined["__error__"]["error"] == "ServerProcessGone"
    assert await _status(a, thread, run["run_id"]) == "error"
    assert await _status(b, thread, queued["run_id"]) == "error"
    assert (await a.threads.get(thread))["status"] != "busy"
    # The thread takes new runs, and continues from its last checkpoint.
    values = await b.runs.wait(thread, "agent", input={"steps": []}, multitask_strategy="reject")
    assert values["steps"][-3:] == ["plan", "write", "review"]


async def test_a_busy_thread_rejects_a_run_sent_to_the_other_process(
    two: tuple[Served, Served],
) -> None:
    a, b = (get_client(url=s.url) for s in two)
    thread = (await a.threads.create())["thread_id"]
    first = await a.runs.create(thread, "agent", input={"steps": [], "delay": 1})
    queued = await b.runs.create(thread, "agent", input={"steps": ["next"]},
                                 multitask_strategy="enqueue")
    values = await b.runs.join(thread, queued["run_id"])
    assert await _status(b, thread, first["run_id"]) == "success"
    assert values["steps"] == ["plan", "write", "review", "next", "plan", "write", "review"]


async def test_workers_serve_one_port() -> None:
    with serving(*_GRAPHS, store=POSTGRES_URL, options=(*_SHARED, "--workers", "2")) as served:
        assert len(served.children()) == 1
        thread = (await get_client(url=served.url).threads.create())["thread_id"]
        # A client per request: new connections, which the kernel spreads over the workers.
        runs = [await get_client(url=served.url).runs.create(
            thread, "agent", input={"steps": []}, multitask_strategy="enqueue")
            for _ in range(6)]
        for run in runs:
            await get_client(url=served.url).runs.join(thread, run["run_id"])
        client = get_client(url=served.url)
        assert [r["status"] for r in await client.runs.list(thread)] == ["success"] * 6
        assert len((await client.threads.get_state(thread))["values"]["steps"]) == 18
        assert "Traceback" not in served.log_text()


async def test_every_worker_freezes_what_exists_at_start_up() -> None:
    with serving("tests.server.api_graphs:collector", store=POSTGRES_URL,
                 options=(*_SHARED, "--workers", "2")) as served:
        frozen: dict[int, int] = {}
        # A client per request: new connections, which the kernel spreads over the workers.
        for _ in range(40):
            result = await get_client(url=served.url).runs.wait(None, "collector", input={})
            assert isinstance(result, dict)
            frozen[result["pid"]] = result["frozen"]
            if len(frozen) == 2:
                break
    assert len(frozen) == 2
    assert all(count > 10_000 for count in frozen.values())

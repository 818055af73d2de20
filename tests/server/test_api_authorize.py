"""The authorization hook of `create_app`, on every route, streams and joins included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, PermissionDeniedError
from starlette.requests import Request

from chronos import server, store, stream
from chronos.server import Action, ThreadRecord
from tests.server.api_graphs import agent
from tests.server.api_server import serving_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _owner_only(request: Request, thread: ThreadRecord, action: Action) -> bool:
    user = request.headers.get("x-user")
    if user is None:
        return False
    if action == "create":
        thread.metadata["owner"] = user
        return True
    if thread.metadata.get("public") and action == "read":
        return True
    return thread.metadata.get("owner") == user


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = server.create_app({"agent": agent}, store=store.MemoryStore(), broker=stream.Broker(),
                            authorize=_owner_only)
    with serving_app(app) as url:
        yield url


async def test_another_users_thread_looks_unknown_on_every_route(url: str) -> None:
    ann = get_client(url=url, headers={"x-user": "ann"})
    bob = get_client(url=url, headers={"x-user": "bob"})
    thread = (await ann.threads.create())["thread_id"]
    run = await ann.runs.create(thread, "agent", input={"steps": [], "delay": 0.3})
    attempts = [
        bob.threads.get(thread), bob.threads.get_state(thread), bob.threads.get_history(thread),
        bob.threads.update_state(thread, {"steps": ["x"]}), bob.threads.delete(thread),
        bob.runs.list(thread), bob.runs.get(thread, run["run_id"]),
        bob.runs.cancel(thread, run["run_id"]), bob.runs.create(thread, "agent", input={}),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            await attempt
    with pytest.raises(NotFoundError):
        async for _ in bob.runs.join_stream(thread, run["run_id"]):
            pass
    with pytest.raises(NotFoundError):
        async for _ in bob.runs.stream(thread, "agent", input={}):
            pass
    assert thread not in [t["thread_id"] for t in await bob.threads.search()]
    assert thread in [t["thread_id"] for t in await ann.threads.search()]
    assert (await ann.runs.join(thread, run["run_id"]))["steps"] == ["plan", "write", "review"]
    assert [r["run_id"] for r in await ann.runs.list(thread)] == [run["run_id"]]


async def test_a_thread_one_may_read_but_not_run_is_403(url: str) -> None:
    ann = get_client(url=url, headers={"x-user": "ann"})
    bob = get_client(url=url, headers={"x-user": "bob"})
    thread = (await ann.threads.create(metadata={"public": True}))["thread_id"]
    assert (await bob.threads.get(thread))["metadata"]["owner"] == "ann"
    with pytest.raises(PermissionDeniedError):
        await bob.runs.create(thread, "agent", input={})
    assert await ann.runs.list(thread) == []


async def test_a_refused_create_is_403_and_leaves_no_thread(url: str) -> None:
    anonymous = get_client(url=url)
    with pytest.raises(PermissionDeniedError):
        await anonymous.threads.create()
    with pytest.raises(PermissionDeniedError):
        await anonymous.runs.create(None, "agent", input={})
    ann = get_client(url=url, headers={"x-user": "ann"})
    assert all(t["metadata"].get("owner") for t in await ann.threads.search(limit=100))

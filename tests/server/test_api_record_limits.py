"""Thread and run records stay bounded (`server.Retention`), in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from chronos import server, store, stream
from chronos.errors import ConfigurationError
from chronos.server._record_limits import threads_beyond
from tests.server.api_graphs import agent
from tests.server.api_server import serving_app
from tests.stream.redis_helpers import REDIS_URL

pytestmark = pytest.mark.anyio

_SWEEP = 0.1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
def records(request: pytest.FixtureRequest) -> Iterator[Callable[[], server.Records]]:
    """A new client of the same records each call: the app's and the test's loops differ."""
    if request.param == "memory":
        shared = server.MemoryRecords()
        yield lambda: shared
        return
    prefix = f"chronos:test-limits:{uuid.uuid4().hex}:"
    yield lambda: server.RedisRecords(REDIS_URL, key_prefix=prefix)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*client.keys(prefix + "*") or [prefix])
    client.close()


Records = Callable[[], server.Records]


def _serve(records: Records, retention: server.Retention) -> AbstractContextManager[str]:
    app = server.create_app({"agent": agent}, store=store.MemoryStore(),
                            broker=stream.Broker(), records=records(), retention=retention)
    return serving_app(app)


async def test_a_thread_keeps_its_newest_finished_runs(records: Records) -> None:
    with _serve(records, server.Retention(runs_per_thread=2)) as url:
        client = get_client(url=url)
        thread = (await client.threads.create())["thread_id"]
        ids = []
        for _ in range(4):
            run = await client.runs.create(thread, "agent", input={"steps": []})
            await client.runs.join(thread, run["run_id"])
            ids.append(run["run_id"])
        kept = [r["run_id"] for r in await client.runs.list(thread)]
        assert kept == ids[:-3:-1]  # the two newest, newest first
        with pytest.raises(NotFoundError):
            await client.runs.get(thread, ids[0])
        assert len(await _values(records, f"runs:{thread}")) == 2


async def test_idle_threads_beyond_the_bounds_are_forgotten(records: Records) -> None:
    retention = server.Retention(max_threads=3, sweep_seconds=_SWEEP)
    with _serve(records, retention) as url:
        client = get_client(url=url)
        threads = []
        for _ in range(5):
            thread = (await client.threads.create())["thread_id"]
            await client.runs.wait(thread, "agent", input={"steps": []})
            threads.append(thread)
        busy = (await client.threads.create())["thread_id"]
        await client.runs.create(busy, "agent", input={"steps": [], "delay": 30})
        await _until(lambda: _count(records), lambda n: n == 3)
        # The busy thread stays; of the idle ones, the most recently changed.
        left = {t["thread_id"] for t in await client.threads.search(limit=100)}
        assert left == {busy, *threads[-2:]}
        with pytest.raises(NotFoundError):
            await client.threads.get(threads[0])
        assert await _values(records, f"runs:{threads[0]}") == []


async def test_threads_unchanged_for_their_ttl_are_forgotten(records: Records) -> None:
    retention = server.Retention(thread_ttl=1.0, sweep_seconds=_SWEEP)
    with _serve(records, retention) as url:
        client = get_client(url=url)
        old = (await client.threads.create())["thread_id"]
        await _until(lambda: _ids(records), lambda ids: old not in ids)


def test_the_ttl_and_the_count_pick_the_idle_threads_to_forget() -> None:
    def thread(name: str, updated_at: float, busy: bool = False) -> server.ThreadRecord:
        return server.ThreadRecord(name, 0.0, updated_at, active_run="r" if busy else None)

    threads = [thread("a", 10), thread("b", 50), thread("c", 90), thread("d", 5, busy=True)]
    assert threads_beyond(threads, server.Retention(thread_ttl=60), now=100) == ["a"]
    assert threads_beyond(threads, server.Retention(max_threads=2), now=100) == ["a", "b"]
    both = server.Retention(thread_ttl=60, max_threads=1)
    assert threads_beyond(threads, both, now=100) == ["a", "b", "c"]  # the busy one stays
    assert threads_beyond(threads, server.Retention(max_threads=None), now=100) == []


@pytest.mark.parametrize("bad", [{"runs_per_thread": 0}, {"max_threads": -1},
                                 {"thread_ttl": float("nan")}, {"sweep_seconds": 0}])
def test_a_bound_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        server.Retention(**bad)  # type: ignore[arg-type]


async def _values(records: Records, collection: str) -> list[dict[str, object]]:
    reader = records()
    try:
        return await reader.values(collection)
    finally:
        await reader.aclose()


async def _count(records: Records) -> int:
    return len(await _values(records, "threads"))


async def _ids(records: Records) -> set[str]:
    return {t["thread_id"] for t in await _values(records, "threads")}


async def _until(read: object, done: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if done(await read()):  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: last read {await read()!r}")  # type: ignore[operator]


async def test_records_beside_a_redis_broker_leave_the_brokers_options_to_it() -> None:
    url = REDIS_URL + "?max_pending=5&socket_connect_timeout=2"
    assert server.shares_records(url)
    records = server.records_for(url)
    assert isinstance(records, server.RedisRecords)
    key = f"test-{uuid.uuid4().hex}"
    try:
        await records.put(key, "a", {"x": 1})
        assert await records.get(key, "a") == {"x": 1}
    finally:
        await records.drop(key)
        await records.aclose()
    assert isinstance(server.records_for("memory://?replay_events=9"), server.MemoryRecords)

"""Session leases: one executor per session, on every store.

PostgreSQL advisory locks across connections; SQLite file locks across stores on one file (as
separate processes see it: a byte each of one shared file on Linux, a file per session
elsewhere); the memory store within itself. A lease never waits: a held
session is refused at once, so every step below is bounded (`_BOUND`) and a lease that blocked
instead of refusing fails its test rather than hanging it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chronos.errors import RunConflictError
from chronos.store import MemoryStore, PostgresStore, SQLiteStore
from chronos.store._lease import RangeLeases, file_lease, lease_file_name
from chronos.store._protocol import SessionLeasing
from chronos.store._sql import lease_key
from tests.store.backends import POSTGRES_URL, unique_table

pytestmark = pytest.mark.anyio

_BOUND = 5.0  # seconds; a refusal is immediate, so only a lease that waits comes near it


@pytest.fixture(params=["memory", "sqlite", "sqlite-memory", "postgres"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SessionLeasing, SessionLeasing]]:
    """Two handles on one set of sessions, as two executors see them: one MemoryStore (or
    in-memory SQLite) twice; two SQLiteStore objects on one file, as two processes sharing it
    are; two PostgresStores on one table with pools of their own."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory, memory
    elif request.param == "sqlite-memory":
        async with SQLiteStore(":memory:") as in_memory:
            yield in_memory, in_memory
    elif request.param == "sqlite":
        async with SQLiteStore(tmp_path / "c.db") as a, SQLiteStore(tmp_path / "c.db") as b:
            yield a, b
    else:
        table = unique_table()
        first = PostgresStore(POSTGRES_URL, table=table)
        second = PostgresStore(POSTGRES_URL, table=table)
        try:
            yield first, second
        finally:
            await first.aclose()
            await second.aclose()
            async with PostgresStore(POSTGRES_URL, table=table) as cleaner:
                await cleaner.drop_table()


async def _refused(store: SessionLeasing, session_id: str) -> RunConflictError:
    """The RunConflictError `store.lease(session_id)` raises, at once."""
    with pytest.raises(RunConflictError) as caught:
        async with asyncio.timeout(_BOUND), store.lease(session_id):
            pass
    return caught.value


async def _granted(store: SessionLeasing, session_id: str) -> None:
    async with asyncio.timeout(_BOUND), store.lease(session_id):
        pass


async def test_a_held_session_is_refused_at_once_and_given_back_after(
    pair: tuple[SessionLeasing, SessionLeasing],
) -> None:
    first, second = pair
    async with first.lease("s1"):
        assert (await _refused(second, "s1")).session_id == "s1"
        await _granted(second, "s2")  # another session is not held
    async with second.lease("s1"):  # given back at the end of the block
        await _refused(first, "s1")
    await _granted(first, "s1")


async def test_given_back_when_the_block_raises(
    pair: tuple[SessionLeasing, SessionLeasing],
) -> None:
    first, second = pair
    with pytest.raises(ValueError, match="node failed"):
        async with first.lease("s1"):
            raise ValueError("node failed")
    await _granted(second, "s1")


async def test_given_back_when_the_holder_is_cancelled(
    pair: tuple[SessionLeasing, SessionLeasing],
) -> None:
    first, second = pair
    held = asyncio.Event()

    async def hold() -> None:
        async with first.lease("s1"):
            held.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    try:
        async with asyncio.timeout(_BOUND):
            await held.wait()
        await _refused(second, "s1")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await _granted(second, "s1")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_tables_do_not_share_leases(kind: str, tmp_path: Path) -> None:
    if kind == "sqlite":
        a: SQLiteStore | PostgresStore = SQLiteStore(tmp_path / "c.db", table="a")
        b: SQLiteStore | PostgresStore = SQLiteStore(tmp_path / "c.db", table="b")
    else:
        a = PostgresStore(POSTGRES_URL, table=unique_table())
        b = PostgresStore(POSTGRES_URL, table=unique_table())
    try:
        async with a.lease("s1"):
            await _granted(b, "s1")
    finally:
        for store in (a, b):
            if isinstance(store, PostgresStore):
                await store.drop_table()
            await store.aclose()


def test_lease_key_is_stable_and_64_bit() -> None:
    # Every process must compute the same key: a fixed value, not Python's salted hash().
    assert lease_key("t", "s") == lease_key("t", "s")
    assert lease_key("t", "s") != lease_key("u", "s")
    assert lease_key("t", "s") != lease_key("t", "s2")
    assert -(2**63) <= lease_key("chronos_checkpoints", "x" * 1000) < 2**63
    assert lease_key("t", "s") == 9066264237744474509  # pinned: changing it splits versions


@pytest.mark.skipif(not RangeLeases.available(), reason="no open file description locks")
async def test_sqlite_leases_share_one_file_whatever_the_sessions(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "c.db") as sqlite:
        async with sqlite.lease("s0"), sqlite.lease("s1"):
            assert [p.name for p in (tmp_path / "c.db-leases").iterdir()] == ["sessions.lock"]
        async with sqlite.lease("s2"):
            pass
        assert [p.name for p in (tmp_path / "c.db-leases").iterdir()] == ["sessions.lock"]


@pytest.mark.skipif(not RangeLeases.available(), reason="no open file description locks")
async def test_a_range_lease_closed_with_its_file_is_given_back(tmp_path: Path) -> None:
    # As when its process dies: the kernel drops the locks of a file's last descriptor.
    path = str(tmp_path / "sessions.lock")
    holder, other = RangeLeases(path), RangeLeases(path)
    with holder.hold("s1", 7):
        with pytest.raises(RunConflictError), other.hold("s1", 7):
            pass
        with other.hold("s2", 8):  # another key: another byte
            pass
        holder.close()
        with other.hold("s1", 7):
            pass
    other.close()


def test_a_file_lease_leaves_no_file_behind(tmp_path: Path) -> None:
    # The leases of platforms without open file description locks: a file per session.
    path = str(tmp_path / lease_file_name(lease_key("chronos_checkpoints", "s1")))
    with file_lease(path, "s1"):
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_file_lease_left_by_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    # A process killed while holding a lease leaves its (unlocked) file; SIGKILL itself is
    # tested with real processes in tests/graph/test_crash_recovery.py.
    path = tmp_path / lease_file_name(lease_key("chronos_checkpoints", "s1"))
    path.touch()
    with file_lease(str(path), "s1"), pytest.raises(RunConflictError), file_lease(str(path), "s1"):
        pass
    assert list(tmp_path.iterdir()) == []


async def test_every_store_leases(tmp_path: Path) -> None:
    assert isinstance(PostgresStore(POSTGRES_URL), SessionLeasing)
    assert isinstance(MemoryStore(), SessionLeasing)
    async with SQLiteStore(tmp_path / "c.db") as sqlite:
        assert isinstance(sqlite, SessionLeasing)

"""Session leases: one executor per session, on every store.

PostgreSQL advisory locks across connections; SQLite file locks across stores on one file (as
separate processes see it); the memory store within itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chronos.errors import RunConflictError
from chronos.store import MemoryStore, PostgresStore, SQLiteStore
from chronos.store._lease import lease_file_name
from chronos.store._protocol import SessionLeasing
from chronos.store._sql import lease_key
from tests.store.backends import POSTGRES_URL, unique_table

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pair() -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one table with pools of their own: two processes, as Postgres sees it."""
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


async def test_a_held_session_is_refused_at_once(pair: tuple[PostgresStore, PostgresStore]) -> None:
    first, second = pair
    async with first.lease("s1"):
        with pytest.raises(RunConflictError) as caught:
            await asyncio.wait_for(second.lease("s1").__aenter__(), 5)
        assert caught.value.session_id == "s1"
        async with second.lease("s2"):  # another session is not held
            pass
    async with second.lease("s1"):  # given back at the end of the block
        with pytest.raises(RunConflictError):
            async with first.lease("s1"):
                pass


async def test_given_back_when_the_block_raises(pair: tuple[PostgresStore, PostgresStore]) -> None:
    first, second = pair
    with pytest.raises(ValueError, match="node failed"):
        async with first.lease("s1"):
            raise ValueError("node failed")
    async with second.lease("s1"):
        pass


async def test_given_back_when_the_holder_is_cancelled(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = pair
    held = asyncio.Event()

    async def hold() -> None:
        async with first.lease("s1"):
            held.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await held.wait()
    with pytest.raises(RunConflictError):
        async with second.lease("s1"):
            pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with second.lease("s1"):
        pass


async def test_tables_do_not_share_leases() -> None:
    a = PostgresStore(POSTGRES_URL, table=unique_table())
    b = PostgresStore(POSTGRES_URL, table=unique_table())
    try:
        async with a.lease("s1"), b.lease("s1"):
            pass
    finally:
        for store in (a, b):
            await store.drop_table()
            await store.aclose()


def test_lease_key_is_stable_and_64_bit() -> None:
    # Every process must compute the same key: a fixed value, not Python's salted hash().
    assert lease_key("t", "s") == lease_key("t", "s")
    assert lease_key("t", "s") != lease_key("u", "s")
    assert lease_key("t", "s") != lease_key("t", "s2")
    assert -(2**63) <= lease_key("chronos_checkpoints", "x" * 1000) < 2**63
    assert lease_key("t", "s") == 9066264237744474509  # pinned: changing it splits versions


@pytest.fixture(params=["memory", "sqlite", "sqlite-memory"])
def local_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[SessionLeasing, SessionLeasing]:
    """Two handles on one set of sessions: one MemoryStore (or in-memory SQLite) twice; two
    SQLiteStore objects on one file, as two processes sharing it are."""
    if request.param == "memory":
        memory = MemoryStore()
        return memory, memory
    if request.param == "sqlite-memory":
        in_memory = SQLiteStore(":memory:")
        return in_memory, in_memory
    return SQLiteStore(tmp_path / "c.db"), SQLiteStore(tmp_path / "c.db")


async def test_local_stores_refuse_a_held_session_and_give_it_back(
    local_pair: tuple[SessionLeasing, SessionLeasing],
) -> None:
    first, second = local_pair
    async with first.lease("s1"):
        with pytest.raises(RunConflictError) as caught:
            async with second.lease("s1"):
                pass
        assert caught.value.session_id == "s1"
        async with second.lease("s2"):
            pass
    with pytest.raises(ValueError, match="node failed"):
        async with second.lease("s1"):
            raise ValueError("node failed")
    held = asyncio.Event()

    async def hold() -> None:
        async with first.lease("s1"):
            held.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await held.wait()
    with pytest.raises(RunConflictError):
        async with second.lease("s1"):
            pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with second.lease("s1"):
        pass


async def test_a_sqlite_lease_leaves_no_file_behind(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "c.db") as sqlite:
        for i in range(3):
            async with sqlite.lease(f"s{i}"):
                assert len(list((tmp_path / "c.db-leases").iterdir())) == 1
        assert list((tmp_path / "c.db-leases").iterdir()) == []


async def test_a_sqlite_lease_file_left_by_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    # A process killed while holding a lease leaves its (unlocked) file; SIGKILL itself is
    # tested with real processes in tests/graph/test_crash_recovery.py.
    sqlite = SQLiteStore(tmp_path / "c.db")
    folder = tmp_path / "c.db-leases"
    folder.mkdir()
    (folder / lease_file_name(lease_key("chronos_checkpoints", "s1"))).touch()
    async with sqlite.lease("s1"):
        with pytest.raises(RunConflictError):
            async with SQLiteStore(tmp_path / "c.db").lease("s1"):
                pass
    assert list(folder.iterdir()) == []


async def test_sqlite_tables_do_not_share_leases(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "c.db", table="a")
    b = SQLiteStore(tmp_path / "c.db", table="b")
    async with a.lease("s1"), b.lease("s1"):
        pass


async def test_every_store_leases(tmp_path: Path) -> None:
    assert isinstance(PostgresStore(POSTGRES_URL), SessionLeasing)
    assert isinstance(MemoryStore(), SessionLeasing)
    async with SQLiteStore(tmp_path / "c.db") as sqlite:
        assert isinstance(sqlite, SessionLeasing)

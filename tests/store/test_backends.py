"""What is particular to each backend: URLs, SQLite's file and WAL, Postgres being reachable."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from chronos import store
from chronos.errors import ConfigurationError, StoreError
from tests.store.backends import POSTGRES_URL, unique_table
from tests.store.test_contract import make

pytestmark = pytest.mark.anyio


def test_from_url_picks_the_store() -> None:
    assert isinstance(store.from_url("memory://"), store.MemoryStore)
    relative = store.from_url("sqlite:///runs.db")
    assert isinstance(relative, store.SQLiteStore)
    assert relative.path == "runs.db"
    absolute = store.from_url("sqlite:////var/lib/runs.db")
    assert isinstance(absolute, store.SQLiteStore)
    assert absolute.path == "/var/lib/runs.db"
    postgres = store.from_url(POSTGRES_URL)
    assert isinstance(postgres, store.PostgresStore)
    assert postgres.url == POSTGRES_URL
    assert isinstance(store.from_url("postgres://u@h/db"), store.PostgresStore)


async def test_sqlite_in_memory_keeps_every_checkpoint_on_its_one_connection() -> None:
    async with store.from_url("sqlite:///:memory:") as in_memory:
        assert isinstance(in_memory, store.SQLiteStore)
        for step in range(300):  # past the point where the WAL would be checkpointed
            await in_memory.put(make(f"c{step}", step=step))
        assert [c.id for c in await in_memory.history("s1", limit=2)] == ["c298", "c299"]
        assert len(await in_memory.history("s1")) == 300
    async with store.SQLiteStore(":memory:") as other:  # a database of its own
        assert await other.latest("s1") is None


@pytest.mark.parametrize("url", ["redis://localhost", "runs.db", "sqlite://"])
def test_from_url_rejects_what_it_cannot_open(url: str) -> None:
    with pytest.raises(ConfigurationError):
        store.from_url(url)


async def test_from_url_decodes_the_path_and_takes_the_stores_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with store.from_url("sqlite:///my%20runs.db?table=agent_runs&synchronous=full") as s:
        assert isinstance(s, store.SQLiteStore)
        await s.put(make("c1"))
    assert (tmp_path / "my runs.db").exists()
    async with store.SQLiteStore("my runs.db", table="agent_runs") as same:
        assert (await same.get("c1")).id == "c1"
    table = unique_table()
    postgres = store.from_url(f"{POSTGRES_URL}?table={table}&connect_timeout=5&max_connections=3")
    assert isinstance(postgres, store.PostgresStore)
    assert postgres.url == POSTGRES_URL + "?connect_timeout=5"  # libpq's options stay for libpq
    async with postgres:
        await postgres.put(make("c1"))
    async with store.PostgresStore(POSTGRES_URL, table=table) as same:
        assert (await same.get("c1")).id == "c1"
        await same.drop_table()


@pytest.mark.parametrize(("url", "refusal"), [
    ("sqlite:///x%20y.db?mode=ro", "option 'mode'"),
    ("sqlite:///x.db?synchronous=OFF", "synchronous='OFF' is invalid"),
    ("sqlite:///x.db?table=a&table=b", "given twice"),
    ("memory://?size=3", "option 'size'"),
    ("postgresql://u:hunter2@127.0.0.1/test?nonsense=1", "nonsense"),
    ("postgresql://u:hunter2@127.0.0.1/test?max_connections=many", "max_connections"),
    ("sqlite:///a#b.db", "%23"),
    ("postgresql://u:hunter2@[::1/test", "malformed"),
])
def test_from_url_refuses_options_the_store_does_not_understand(url: str, refusal: str) -> None:
    with pytest.raises(ConfigurationError, match=refusal) as caught:
        store.from_url(url)
    assert "hunter2" not in str(caught.value)


def test_table_names_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="invalid checkpoint table name"):
        store.SQLiteStore("x.db", table="t; DROP TABLE users")
    store.PostgresStore(POSTGRES_URL, table="agents.checkpoints")  # schema-qualified is fine


async def test_sqlite_uses_a_wal_file_that_another_connection_reads(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with store.SQLiteStore(path) as sqlite:
        await sqlite.put(make("c1"))
        with sqlite3.connect(path) as other:  # a second process would see the same
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("SELECT id FROM chronos_checkpoints").fetchall() == [("c1",)]
    async with store.SQLiteStore(path) as reopened:
        assert (await reopened.get("c1")) == make("c1")
        await reopened.aclose()
        with pytest.raises(StoreError, match="closed"):
            await reopened.get("c1")


async def test_sqlite_reads_one_checkpoint_without_queueing_behind_the_store_thread(
        tmp_path: Path) -> None:
    """`get` and `latest` read on the caller's thread, as a put writes, while the store
    thread is busy (here held on purpose; a WAL checkpoint, say) and while another
    connection holds a write transaction, whose uncommitted changes they do not see."""
    path = tmp_path / "runs.db"
    held = threading.Event()
    async with store.SQLiteStore(path) as sqlite:
        await sqlite.put(make("c1"))  # the store is open: its caller-thread connection too
        sqlite._jobs.put((lambda conn: held.wait(10), None, None))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM chronos_checkpoints")
        try:
            assert await asyncio.wait_for(sqlite.get("c1"), 2) == make("c1")
            assert await asyncio.wait_for(sqlite.latest(make("c1").session_id), 2) == make("c1")
            assert await asyncio.wait_for(sqlite.latest("nobody"), 2) is None
        finally:
            other.execute("ROLLBACK")
            other.close()
            held.set()


async def test_sqlite_reports_a_file_it_cannot_open(tmp_path: Path) -> None:
    async with store.SQLiteStore(tmp_path / "missing-dir" / "runs.db") as broken:
        with pytest.raises(StoreError, match="cannot open SQLite store"):
            await broken.latest("s")


async def test_an_unreachable_postgres_is_a_store_error_not_a_hang() -> None:
    async with store.PostgresStore("postgresql://postgres@127.0.0.1:1/test") as unreachable:
        with pytest.raises(StoreError, match="PostgreSQL"):
            await unreachable.latest("s")

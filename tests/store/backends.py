"""Open each checkpoint store for tests; Postgres is the real server, and must be up."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chronos.store import CheckpointStore, MemoryStore, PostgresStore, SQLiteStore

POSTGRES_URL = os.environ.get("CHRONOS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = ["memory", "sqlite", "sqlite-memory", "postgres"]


def unique_table() -> str:
    """A table of its own per test, so parallel test runs never see each other's rows."""
    return f"chronos_test_{uuid.uuid4().hex[:16]}"


@asynccontextmanager
async def open_store(kind: str, directory: Path) -> AsyncIterator[CheckpointStore]:
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        async with SQLiteStore(directory / "checkpoints.db") as sqlite:
            yield sqlite
    elif kind == "sqlite-memory":
        async with SQLiteStore(":memory:") as in_memory:
            yield in_memory
    else:
        table = unique_table()
        postgres = PostgresStore(POSTGRES_URL, table=table)
        try:
            yield postgres
        finally:
            await postgres.aclose()
            async with PostgresStore(POSTGRES_URL, table=table) as cleaner:
                await cleaner.drop_table()

"""`PostgresStore`: checkpoints in PostgreSQL (psycopg 3, async, pooled), for many machines.

psycopg is imported when the store first connects, so `chronos.store` imports without the
`postgres` extra installed; using the store without it raises an ImportError naming the extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from chronos.errors import CheckpointNotFound, StoreError
from chronos.store._protocol import Checkpoint
from chronos.store._sql import POSTGRES, Queries, checkpoint_row, row_checkpoint

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresStore"]


class PostgresStore:
    """Keep checkpoints in a PostgreSQL table.

    ```python
    async with store.PostgresStore("postgresql://app@db/agents") as checkpoints:
        runner = graph.Runner(compiled, checkpoints)
    ```

    Connects on first use and creates the table if missing. Each `put` is one autocommitted
    INSERT, durable when it returns.

    Args:
        url: a libpq connection string or URL.
        table: the table name, optionally schema-qualified (`"agents.checkpoints"`).
        max_connections: the pool's size.
    """

    def __init__(
        self, url: str, *, table: str = "chronos_checkpoints", max_connections: int = 10
    ) -> None:
        self.url = url
        self._sql = Queries(POSTGRES, table)
        self._max = max_connections
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; it is committed when this returns."""
        import psycopg

        row = checkpoint_row(checkpoint)  # encodes first: a bad state never reaches the server
        async with self._connection() as conn:
            try:
                await conn.execute(self._sql.insert, row)
            except psycopg.errors.UniqueViolation as exc:
                raise StoreError(f"checkpoint id {checkpoint.id!r} exists already") from exc

    async def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with this id; `CheckpointNotFound` if there is none."""
        async with self._connection() as conn:
            cursor = await conn.execute(self._sql.get, (checkpoint_id,))
            row = await cursor.fetchone()
        if row is None:
            raise CheckpointNotFound(checkpoint_id=checkpoint_id)
        return row_checkpoint(row)

    async def latest(self, session_id: str) -> Checkpoint | None:
        """The session's most recent checkpoint, or None."""
        async with self._connection() as conn:
            cursor = await conn.execute(self._sql.latest, (session_id,))
            row = await cursor.fetchone()
        return None if row is None else row_checkpoint(row)

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        """The session's checkpoints, oldest first (the last `limit` of them)."""
        async with self._connection() as conn:
            if limit is None:
                cursor = await conn.execute(self._sql.history, (session_id,))
            else:
                cursor = await conn.execute(self._sql.history_limit, (session_id, max(limit, 0)))
            rows = await cursor.fetchall()
        return [row_checkpoint(r) for r in rows]

    async def drop_table(self) -> None:
        """Delete the table and every checkpoint in it (for tests and teardown)."""
        async with self._connection() as conn:
            await conn.execute(self._sql.drop)

    async def aclose(self) -> None:
        """Close the pool. Idempotent."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        import psycopg

        pool = self._pool or await self._open()
        try:
            async with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc

    async def _open(self) -> AsyncConnectionPool[Any]:
        try:
            import psycopg
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:
            raise ImportError(
                "PostgresStore needs the postgres extra: pip install 'chronos-stream[postgres]'"
            ) from exc
        async with self._opening:
            if self._closed:
                raise StoreError("the PostgreSQL store is closed")
            if self._pool is not None:
                return self._pool
            try:
                # One direct connection first: an unreachable server fails at once here,
                # where the pool would retry until its timeout.
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=10
                ) as conn:
                    await conn.execute(self._sql.create)
                    await conn.execute(self._sql.create_index)
            except psycopg.Error as exc:
                raise StoreError(f"cannot open PostgreSQL store: {exc}") from exc
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.url, min_size=1, max_size=self._max, kwargs={"autocommit": True},
                open=False,
            )
            try:
                await pool.open(wait=True, timeout=10)
            except Exception as exc:  # psycopg_pool.PoolTimeout
                await pool.close()
                raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._pool = pool
            return pool

"""`PostgresStore`: checkpoints in PostgreSQL (psycopg 3, async, pooled), for many machines.

psycopg is imported when the store first connects, so `chronos.store` imports without the
`postgres` extra installed; using the store without it raises an ImportError naming the extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from chronos.errors import CheckpointNotFound, RunConflictError, StoreError
from chronos.store._protocol import Checkpoint, SessionInfo
from chronos.store._sql import (
    PG_RELEASE_LEASE,
    PG_TRY_LEASE,
    POSTGRES,
    Queries,
    checkpoint_row,
    lease_key,
    row_checkpoint,
    row_session,
)

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

    `lease` keeps two processes from executing one session at once (the `Runner` takes it
    around every run): it holds one pooled connection for the whole run, so the pool needs
    at least one more connection per concurrent run for the checkpoints themselves.

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
        self._table = table
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

    async def sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        """Every session, the most recently written first (the first `limit` of them)."""
        async with self._connection() as conn:
            if limit is None:
                cursor = await conn.execute(self._sql.sessions)
            else:
                cursor = await conn.execute(self._sql.sessions_limit, (max(limit, 0),))
            rows = await cursor.fetchall()
        return [row_session(r) for r in rows]

    async def delete_session(self, session_id: str) -> int:
        """Delete the session's checkpoints; `RunConflictError` if a run holds it."""
        import psycopg

        async with self._leased_connection(session_id) as conn:
            try:
                cursor = await conn.execute(self._sql.delete_session, (session_id,))
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store: {exc}") from exc
            return cursor.rowcount

    @asynccontextmanager
    async def lease(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session, across processes and machines, while the block runs.

        A PostgreSQL session-level advisory lock on a connection kept out of the pool until
        the block exits: released then (on success, error or cancellation), and by the server
        if this process dies, so a run killed with SIGKILL can be resumed elsewhere at once.

        Raises:
            RunConflictError: another connection holds the session; never waits for it.
            StoreError: PostgreSQL failed.
        """
        async with self._leased_connection(session_id):
            yield

    @asynccontextmanager
    async def _leased_connection(self, session_id: str) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection out of the pool holding the session's advisory lock."""
        import psycopg

        key = lease_key(self._table, session_id)
        pool = self._pool or await self._open()
        try:
            conn = await pool.getconn()
        except Exception as exc:  # psycopg_pool.PoolTimeout, psycopg.Error
            raise StoreError(f"PostgreSQL store: {exc}") from exc
        try:
            try:
                row = await (await conn.execute(PG_TRY_LEASE, (key,))).fetchone()
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store: {exc}") from exc
            if row is None or not row[0]:
                raise RunConflictError(session_id)
            try:
                yield conn
            finally:
                await self._release(conn, key)
        finally:
            await pool.putconn(conn)

    async def _release(self, conn: AsyncConnection[Any], key: int) -> None:
        import psycopg

        try:
            await conn.execute(PG_RELEASE_LEASE, (key,))
        except psycopg.Error:
            # The lock could not be given back on this connection: closing it makes the
            # server drop the lock (returning it to the pool would keep it held). Not raised:
            # the run's own outcome, or exception, is what the caller needs to see.
            await conn.close()
        except asyncio.CancelledError:
            await conn.close()
            raise

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
            # `check`: a connection that died idle in the pool (a server restart, a killed
            # backend, an idle timeout) is replaced before it is handed out, instead of
            # failing the next checkpoint; one empty round trip per checkout.
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.url, min_size=1, max_size=self._max, kwargs={"autocommit": True},
                open=False, check=AsyncConnectionPool.check_connection,
            )
            try:
                await pool.open(wait=True, timeout=10)
            except Exception as exc:  # psycopg_pool.PoolTimeout
                await pool.close()
                raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._pool = pool
            return pool

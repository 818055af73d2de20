"""`SQLiteStore`: checkpoints in a local SQLite file, the default store.

sqlite3 calls block, so they never run on the event loop: one thread per store owns the
connection and executes jobs in order, handing results back through the loop's futures. A
write is one autocommitted INSERT in WAL mode with `synchronous=NORMAL`: when `put` returns the
row is in the WAL file, so it survives the process being killed (SIGKILL); only an OS crash or
power loss can lose the last commits (pass `synchronous="FULL"` to fsync every commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from chronos.errors import CheckpointNotFound, StoreError
from chronos.store._protocol import Checkpoint
from chronos.store._sql import SQLITE, Queries, checkpoint_row, row_checkpoint

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class SQLiteStore:
    """Keep checkpoints in a SQLite file.

    ```python
    async with store.SQLiteStore("runs.db") as checkpoints:
        result = await graph.Runner(compiled, checkpoints).run("session-1", {"query": "hi"})
    ```

    Args:
        path: the database file, created if missing (with its WAL files beside it).
        table: the table name, created if missing.
        synchronous: SQLite's `synchronous` pragma; "NORMAL" survives a killed process,
            "FULL" also an OS crash, at the cost of an fsync per checkpoint.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "chronos.db",
        *,
        table: str = "chronos_checkpoints",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = os.fspath(path)
        self._sql = Queries(SQLITE, table)
        self._synchronous = synchronous
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; it is committed when this returns."""
        row = checkpoint_row(checkpoint)  # encodes here: a bad state never reaches the thread

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(self._sql.insert, row)
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"checkpoint id {checkpoint.id!r} exists already") from exc

        await self._call(insert)

    async def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with this id; `CheckpointNotFound` if there is none."""
        row = await self._call(lambda c: c.execute(self._sql.get, (checkpoint_id,)).fetchone())
        if row is None:
            raise CheckpointNotFound(checkpoint_id=checkpoint_id)
        return row_checkpoint(row)

    async def latest(self, session_id: str) -> Checkpoint | None:
        """The session's most recent checkpoint, or None."""
        row = await self._call(lambda c: c.execute(self._sql.latest, (session_id,)).fetchone())
        return None if row is None else row_checkpoint(row)

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        """The session's checkpoints, oldest first (the last `limit` of them)."""
        query: str = self._sql.history
        params: tuple[Any, ...] = (session_id,)
        if limit is not None:
            query, params = self._sql.history_limit, (session_id, max(limit, 0))
        rows = await self._call(lambda c: c.execute(query, params).fetchall())
        return [row_checkpoint(r) for r in rows]

    async def aclose(self) -> None:
        """Close the connection and end the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread is not None
        if started:
            with contextlib.suppress(StoreError):  # a store that never opened has nothing to close
                await self._submit(lambda c: c.close())
            self._jobs.put(None)

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._closed:
                raise StoreError("the SQLite store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"chronos-sqlite:{self.path}", daemon=True
                )
                self._thread.start()
        result: T = await self._submit(job)
        return result

    def _submit(self, job: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((job, loop, future))
        return future

    def _work(self) -> None:
        conn: sqlite3.Connection | None = None
        error: BaseException | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(self._sql.create)
            conn.execute(self._sql.create_index)
        except sqlite3.Error as exc:
            error = StoreError(f"cannot open SQLite store {self.path!r}: {exc}")
        while (item := self._jobs.get()) is not None:
            job, loop, future = item
            try:
                if error is not None or conn is None:
                    raise error or StoreError("no connection")
                result = job(conn)
            except BaseException as exc:  # handed to the awaiting task, not raised here
                if isinstance(exc, sqlite3.Error):
                    exc = StoreError(f"SQLite store {self.path!r}: {exc}")
                _deliver(loop, future, None, exc)
            else:
                _deliver(loop, future, result, None)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # the awaiting task was cancelled; the job still ran
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(settle)

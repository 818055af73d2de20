"""`SQLiteStore`: checkpoints in a local SQLite file, the default store.

A write is one autocommitted INSERT in WAL mode with `synchronous=NORMAL`: when `put` returns
the row is in the WAL file (handed to the OS with write(), not fsynced), so it survives the
process being killed (SIGKILL); only an OS crash or power loss can lose the last commits (pass
`synchronous="FULL"` to fsync every commit).

Reads, the first write and anything that may wait run in one thread per store, which owns a
connection and executes jobs in order, handing results back through the loop's futures. A
checkpoint write under NORMAL runs on the caller's thread instead (and so does the read of one
checkpoint, `get` or `latest`, when that connection is free), on a second connection that can
never wait: `busy_timeout=0` (a locked database sends the write to the thread, which
waits for the lock) and `wal_autocheckpoint=0` (it never copies the WAL into the database,
the one step that fsyncs; the thread does that every `_WAL_CHECKPOINT_EVERY` writes). What is
left is an INSERT and a write() into the page cache; the hop to the thread and back cost
several times that per checkpoint, most of a step (BENCHMARKS.md, graph execution).

`lease` keeps two runners, in this process or any other, from executing one session at once:
on Linux a lock on the session's byte of `<path>-leases/sessions.lock`, elsewhere an `flock`
on a file of the session's own in `<path>-leases/`; either dies with its process (see
`_lease.py`). `":memory:"` is a database of the store's own, on its one connection:
nothing else can open it, so its leases are held within the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Literal, TypeVar

from chronos.errors import CheckpointNotFound, StoreError
from chronos.store._lease import RangeLeases, SessionClaims, file_lease, lease_file_name
from chronos.store._protocol import Checkpoint, SessionInfo
from chronos.store._sql import (
    SQLITE,
    Queries,
    checkpoint_row,
    lease_key,
    row_checkpoint,
    row_session,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_Job = tuple[
    Callable[[sqlite3.Connection], Any],
    asyncio.AbstractEventLoop | None,
    "asyncio.Future[Any] | None",  # None: nobody waits for the result (a WAL checkpoint)
]
_WAL_CHECKPOINT_EVERY: Final = 256  # caller-thread writes between two WAL checkpoints
_IN_MEMORY: Final = ":memory:"


class SQLiteStore:
    """Keep checkpoints in a SQLite file.

    ```python
    async with store.SQLiteStore("runs.db") as checkpoints:
        result = await graph.Runner(compiled, checkpoints).run("session-1", {"query": "hi"})
    ```

    Args:
        path: the database file, created if missing (with its WAL files and a `-leases`
            folder beside it); `":memory:"` for a database that lives as long as the store.
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
        self._table = table
        self._in_memory = self.path == _IN_MEMORY
        self._claims = SessionClaims()  # the leases of an in-memory database
        self._ranges = (RangeLeases(os.path.join(f"{self.path}-leases", "sessions.lock"))
                        if RangeLeases.available() and not self._in_memory else None)
        self._synchronous = synchronous
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        # The caller-thread connection (NORMAL only), opened by the store thread once the table
        # exists. Whoever holds `_write_lock` may use it; a put that cannot take it at once
        # (another loop or thread is writing) goes through the store thread.
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._writes_since_wal_checkpoint = 0
        # A WAL checkpoint is queued: until it has run, writes and reads go through the store
        # thread, behind it. Here they would keep taking the database's locks, which the
        # checkpoint waits for in SQLite's busy handler (sleeping up to 100 ms a try) while
        # they add to the WAL: with two CPU hogs it grew to 7-15 MB, not 4.5.
        self._wal_checkpoint_due = False

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; it is committed when this returns."""
        row = checkpoint_row(checkpoint)  # encodes here: a bad state never reaches the thread
        if self._here_free():
            try:
                if self._insert_here(row, checkpoint.id):
                    return
            finally:
                self._write_lock.release()
        await self._call(lambda conn: self._insert(conn, row, checkpoint.id))

    def _here_free(self) -> bool:
        """Whether the caller-thread connection may be used now; if so, `_write_lock` is
        held (release it)."""
        return (self._writer is not None and not self._wal_checkpoint_due
                and self._write_lock.acquire(blocking=False))

    def _insert(self, conn: sqlite3.Connection, row: tuple[Any, ...], checkpoint_id: str) -> None:
        try:
            conn.execute(self._sql.insert, row)
        except sqlite3.IntegrityError as exc:
            # Only the id is unique; any other constraint (a trigger's RAISE, ...) is
            # reported as what it is. (`sqlite_errorcode` needs Python 3.11.)
            if "UNIQUE constraint failed" not in str(exc):
                raise
            raise StoreError(f"checkpoint id {checkpoint_id!r} exists already") from exc

    def _insert_here(self, row: tuple[Any, ...], checkpoint_id: str) -> bool:
        """INSERT on the calling thread; False if the database is locked (nothing written)."""
        writer = self._writer
        if writer is None or self._closed:
            return False
        try:
            self._insert(writer, row, checkpoint_id)
        except sqlite3.OperationalError as exc:
            # SQLITE_BUSY and SQLITE_LOCKED ("database is locked", "database table is locked");
            # the message, as `sqlite_errorcode` needs Python 3.11.
            if "locked" in str(exc):
                return False
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        self._writes_since_wal_checkpoint += 1
        if self._writes_since_wal_checkpoint >= _WAL_CHECKPOINT_EVERY:
            self._writes_since_wal_checkpoint = 0
            self._wal_checkpoint_due = True
            self._jobs.put((self._checkpoint_wal, None, None))
        return True

    def _checkpoint_wal(self, conn: sqlite3.Connection) -> None:
        # RESTART, not PASSIVE: a writer restarts the WAL from its beginning only if every
        # frame was copied when it starts, which a run writing all along almost never lets a
        # PASSIVE checkpoint achieve (the WAL grew without bound). RESTART holds new writers
        # off until it is done; they queue here behind it meanwhile (`_wal_checkpoint_due`).
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            self._wal_checkpoint_due = False

    async def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with this id; `CheckpointNotFound` if there is none."""
        row = await self._row(self._sql.get, (checkpoint_id,))
        if row is None:
            raise CheckpointNotFound(checkpoint_id=checkpoint_id)
        return row_checkpoint(row)

    async def latest(self, session_id: str) -> Checkpoint | None:
        """The session's most recent checkpoint, or None."""
        row = await self._row(self._sql.latest, (session_id,))
        return None if row is None else row_checkpoint(row)

    async def _row(self, query: str, params: tuple[Any, ...]) -> Any:
        """One row by an indexed key, read as a put writes: on the caller's thread when the
        caller-thread connection is free (a read in WAL mode does not wait for writers), else
        (or should the database be locked) on the store thread. The hop to the thread and
        back cost 50 us against 6 for the read itself (`latest` of a new session), once per
        served run (BENCHMARKS.md, Agent Server API)."""
        if self._here_free():
            try:
                found, row = self._read_here(query, params)
                if found:
                    return row
            finally:
                self._write_lock.release()
        return await self._call(lambda c: c.execute(query, params).fetchone())

    def _read_here(self, query: str, params: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, the row or None), or (False, None) if the database is locked."""
        writer = self._writer
        if writer is None or self._closed:
            return False, None
        try:
            cursor = writer.execute(query, params)
            try:
                return True, cursor.fetchone()
            finally:
                cursor.close()  # ends the read: an open one would hold WAL checkpoints back
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return False, None
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        """The session's checkpoints, oldest first (the last `limit` of them)."""
        query: str = self._sql.history
        params: tuple[Any, ...] = (session_id,)
        if limit is not None:
            query, params = self._sql.history_limit, (session_id, max(limit, 0))
        rows = await self._call(lambda c: c.execute(query, params).fetchall())
        return [row_checkpoint(r) for r in rows]

    async def sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        """Every session, the most recently written first (the first `limit` of them)."""
        query: str = self._sql.sessions
        params: tuple[Any, ...] = ()
        if limit is not None:
            query, params = self._sql.sessions_limit, (max(limit, 0),)
        rows = await self._call(lambda c: c.execute(query, params).fetchall())
        return [row_session(r) for r in rows]

    async def delete_session(self, session_id: str) -> int:
        """Delete the session's checkpoints; `RunConflictError` if a run holds it."""
        async with self.lease(session_id):
            return await self._call(
                lambda c: c.execute(self._sql.delete_session, (session_id,)).rowcount)

    @contextlib.asynccontextmanager
    async def lease(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session, across the processes that share the file, while the block runs.

        Given back when the block exits, however it exits, and by the OS if this process
        dies, so a run killed with SIGKILL can be resumed by another process at once.

        Raises:
            RunConflictError: another runner holds the session; never waits for it.
            StoreError: the lease file cannot be created.
        """
        if self._in_memory:
            with self._claims.hold(session_id):
                yield
            return
        if self._ranges is not None:
            with self._ranges.hold(session_id, lease_key(self._table, session_id)):
                yield
            return
        folder = f"{self.path}-leases"
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the lease folder {folder!r}: {exc}") from exc
        name = lease_file_name(lease_key(self._table, session_id))
        with file_lease(os.path.join(folder, name), session_id):
            yield

    async def aclose(self) -> None:
        """Close the connection and end the thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread is not None
        if started:
            with self._write_lock:  # waits for a write in progress on another thread
                writer, self._writer = self._writer, None
            with contextlib.suppress(StoreError):  # a store that never opened has nothing to close
                await self._submit(lambda c: c.close())
            if writer is not None:
                writer.close()
            self._jobs.put(None)
        if self._ranges is not None:
            self._ranges.close()

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
            # A second connection to ":memory:" would open a second, empty database.
            if self._synchronous == "NORMAL" and not self._in_memory:
                writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                writer.execute("PRAGMA synchronous=NORMAL")
                writer.execute("PRAGMA busy_timeout=0")
                writer.execute("PRAGMA wal_autocheckpoint=0")
                self._writer = writer
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
                if loop is not None and future is not None:
                    _deliver(loop, future, None, exc)
            else:
                if loop is not None and future is not None:
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

"""The SQL both relational stores run, and the mapping between rows and checkpoints.

SQLite and Postgres differ here only in placeholders and column types; the stores themselves
just execute these statements, so their behaviour cannot drift apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from chronos.errors import ConfigurationError
from chronos.store._protocol import (
    Checkpoint,
    SessionInfo,
    decode_position,
    decode_state,
    encode_pending,
    encode_position,
    encode_state,
)

__all__ = [
    "PG_RELEASE_LEASE",
    "PG_TRY_LEASE",
    "POSTGRES",
    "SQLITE",
    "Queries",
    "checkpoint_row",
    "lease_key",
    "row_checkpoint",
    "row_session",
]

_COLUMNS = ("id, session_id, run_id, graph_id, step, status, ran, next, state, parent_id, "
            "created_at, error, pending")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


@dataclass(frozen=True, slots=True)
class _Dialect:
    param: str
    serial: str
    blob: str
    real: str


# No AUTOINCREMENT: it costs a write to sqlite_sequence per insert, and rowids are only ever
# reused after deleting the newest row, which stores never do.
SQLITE = _Dialect(param="?", serial="INTEGER PRIMARY KEY", blob="BLOB", real="REAL")
POSTGRES = _Dialect(param="%s", serial="BIGSERIAL PRIMARY KEY", blob="BYTEA",
                    real="DOUBLE PRECISION")


class Queries:
    """Every statement a store runs, for one dialect and one table."""

    def __init__(self, dialect: _Dialect, table: str) -> None:
        if not _NAME.match(table):
            raise ConfigurationError(f"invalid checkpoint table name {table!r}")
        p = dialect.param
        index = table.replace(".", "_") + "_session"
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {table} ("
            f"seq {dialect.serial}, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL, "
            f"run_id TEXT NOT NULL, graph_id TEXT NOT NULL, step INTEGER NOT NULL, "
            f"status TEXT NOT NULL, ran TEXT NOT NULL, next TEXT NOT NULL, "
            f"state {dialect.blob} NOT NULL, parent_id TEXT, created_at {dialect.real} NOT NULL, "
            f"error TEXT NOT NULL, pending {dialect.blob} NOT NULL)"
        )
        self.create_index = (
            f"CREATE INDEX IF NOT EXISTS {index} ON {table} (session_id, seq)"
        )
        self.insert = f"INSERT INTO {table} ({_COLUMNS}) VALUES ({', '.join([p] * 13)})"
        self.get = f"SELECT {_COLUMNS} FROM {table} WHERE id = {p}"
        self.latest = (
            f"SELECT {_COLUMNS} FROM {table} WHERE session_id = {p} ORDER BY seq DESC LIMIT 1"
        )
        self.history = f"SELECT {_COLUMNS} FROM {table} WHERE session_id = {p} ORDER BY seq"
        self.history_limit = (
            f"SELECT {_COLUMNS} FROM (SELECT seq, {_COLUMNS} FROM {table} WHERE session_id = {p} "
            f"ORDER BY seq DESC LIMIT {p}) AS recent ORDER BY seq"
        )
        # Each session's newest row (the greatest seq) joined with its count and earliest time.
        self.sessions = (
            f"SELECT c.session_id, c.graph_id, c.status, c.ran, c.next, s.n, s.first_at, "
            f"c.created_at, c.id FROM {table} AS c JOIN (SELECT MAX(seq) AS last, COUNT(*) AS n, "
            f"MIN(created_at) AS first_at FROM {table} GROUP BY session_id) AS s "
            f"ON c.seq = s.last ORDER BY c.seq DESC"
        )
        self.sessions_limit = f"{self.sessions} LIMIT {p}"
        self.drop = f"DROP TABLE IF EXISTS {table}"


def checkpoint_row(checkpoint: Checkpoint) -> tuple[Any, ...]:
    """The INSERT parameters; encoding the state first, so a bad value writes nothing."""
    c = checkpoint
    return (c.id, c.session_id, c.run_id, c.graph_id, c.step, c.status,
            orjson.dumps(c.ran).decode(), encode_position(c).decode(), encode_state(c.state),
            c.parent_id, c.created_at, c.error, encode_pending(c.pending))


def row_checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    """A checkpoint from a row selected with the store's column list."""
    (id, session_id, run_id, graph_id, step, status, ran, nxt, state, parent_id, created_at,
     error, pending) = row
    return Checkpoint(
        id=id, session_id=session_id, run_id=run_id, graph_id=graph_id, step=step,
        status=status, ran=tuple(orjson.loads(ran)), state=decode_state(state),
        parent_id=parent_id, created_at=created_at, error=error, pending=decode_state(pending),
        **decode_position(nxt),
    )


def row_session(row: tuple[Any, ...]) -> SessionInfo:
    """A session from a row of the `sessions` query."""
    session_id, graph_id, status, ran, nxt, count, started_at, updated_at, latest_id = row
    position = decode_position(nxt)
    return SessionInfo(
        session_id=session_id, graph_id=graph_id, status=status, ran=tuple(orjson.loads(ran)),
        next=position["next"], checkpoints=int(count), started_at=started_at,
        updated_at=updated_at, latest_id=latest_id, metadata=position.get("metadata", {}),
    )


# Session leases are PostgreSQL session-level advisory locks, keyed by a stable 64-bit hash:
# taken once per run on a connection held for the run, and released by the server itself when
# that connection drops (a killed process), so nothing needs cleaning up after a crash.
PG_TRY_LEASE = "SELECT pg_try_advisory_lock(%s)"
PG_RELEASE_LEASE = "SELECT pg_advisory_unlock(%s)"


def lease_key(table: str, session_id: str) -> int:
    """The advisory-lock key of a session: a signed 64-bit hash, the same in every process.

    Python's `hash()` is salted per process and PostgreSQL's `hashtext` is 32 bits, so this is
    blake2b. The table name is part of it: stores on different tables never block each other.
    """
    digest = hashlib.blake2b(f"{table}\0{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)

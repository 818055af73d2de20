"""`from_url`: one URL picks the checkpoint store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chronos._url import choice, parse_url
from chronos.errors import ConfigurationError
from chronos.store.memory import MemoryStore
from chronos.store.postgres import PostgresStore
from chronos.store.sqlite import SQLiteStore

__all__ = ["from_url"]

# Query options the stores themselves take; a PostgreSQL URL's others are libpq's.
_SQLITE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "table": str, "synchronous": choice("NORMAL", "FULL"),
}
_POSTGRES_OPTIONS: dict[str, Callable[[str], Any]] = {"table": str, "max_connections": int}


def from_url(url: str) -> MemoryStore | SQLiteStore | PostgresStore:
    """The store a URL names.

    ```python
    store.from_url("sqlite:///runs.db")        # a file relative to the working directory
    store.from_url("sqlite:////var/lib/runs.db")  # an absolute path
    store.from_url("postgresql://app@db:5432/agents")
    store.from_url("memory://")
    ```

    The path is percent-decoded (`sqlite:///my%20runs.db` is `my runs.db`). Query options:
    `table` and, for SQLite, `synchronous` (`NORMAL` or `FULL`), for PostgreSQL
    `max_connections` and libpq's own (`sslmode`, `connect_timeout`, ...).

    Raises:
        ConfigurationError: an unknown scheme, a SQLite URL without a path, or a query option
            the store does not understand.
    """
    parsed = parse_url(url, kind="store")
    if parsed.scheme == "memory":
        parsed.options({})
        return MemoryStore()
    if parsed.scheme == "sqlite":
        options = parsed.options(_SQLITE_OPTIONS)
        if not parsed.path:
            raise ConfigurationError(f"SQLite URL without a file path: {parsed.shown!r}")
        return SQLiteStore(parsed.path, **options)
    if parsed.scheme in ("postgresql", "postgres"):
        options = parsed.options(_POSTGRES_OPTIONS, others=True)
        libpq = parsed.without(_POSTGRES_OPTIONS)
        _check_libpq(libpq)
        return PostgresStore(libpq, **options)
    raise ConfigurationError(
        f"unknown store URL scheme {parsed.scheme!r}; use sqlite://, postgresql:// or memory://"
    )


def _check_libpq(url: str) -> None:
    """Refuse a URL that libpq would, now rather than at the first connection."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the `postgres` extra is missing: the store says so when it connects
        return
    import psycopg

    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"PostgreSQL URL refused: {str(exc).strip()}") from exc

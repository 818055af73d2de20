"""`from_url`: one URL picks the checkpoint store."""

from __future__ import annotations

from chronos.errors import ConfigurationError
from chronos.store.memory import MemoryStore
from chronos.store.postgres import PostgresStore
from chronos.store.sqlite import SQLiteStore

__all__ = ["from_url"]


def from_url(url: str) -> MemoryStore | SQLiteStore | PostgresStore:
    """The store a URL names.

    ```python
    store.from_url("sqlite:///runs.db")        # a file relative to the working directory
    store.from_url("sqlite:////var/lib/runs.db")  # an absolute path
    store.from_url("postgresql://app@db:5432/agents")
    store.from_url("memory://")
    ```

    Raises:
        ConfigurationError: an unknown scheme or a URL without a path.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigurationError(f"not a store URL: {url!r}")
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"SQLite URL without a file path: {url!r}")
        return SQLiteStore(path)
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r}; use sqlite://, postgresql:// or memory://"
    )

"""Checkpoint storage: memory, SQLite (the default), PostgreSQL.

```python
from chronos import store

checkpoints = store.from_url("sqlite:///runs.db")      # or "postgresql://...", "memory://"
```
"""

from __future__ import annotations

from chronos.store import memory, postgres, sqlite
from chronos.store._protocol import Checkpoint, CheckpointStatus, CheckpointStore, SessionInfo
from chronos.store._url import from_url
from chronos.store.memory import MemoryStore
from chronos.store.postgres import PostgresStore
from chronos.store.sqlite import SQLiteStore

__all__ = [
    "Checkpoint",
    "CheckpointStatus",
    "CheckpointStore",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "SessionInfo",
    "from_url",
    "memory",
    "postgres",
    "sqlite",
]


for _name in (
    "Checkpoint", "CheckpointStore", "MemoryStore", "PostgresStore", "SQLiteStore", "SessionInfo",
    "from_url",
):
    globals()[_name].__module__ = __name__

"""Checkpoint storage: memory, SQLite (the default), PostgreSQL.

```python
from chronos import store

checkpoints = store.from_url("sqlite:///runs.db")      # or "postgresql://...", "memory://"
```
"""

from __future__ import annotations

from chronos.store import memory, postgres, sqlite
from chronos.store._protocol import (
    Checkpoint,
    CheckpointStatus,
    CheckpointStore,
    SessionInfo,
    SessionLeasing,
)
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
    "SessionLeasing",
    "from_url",
    "memory",
    "postgres",
    "sqlite",
]

# Reprs, docs and pickles name the public path (`chronos.store.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

"""One entry point for the embedded or the distributed setup: a broker and a store by URL.

```python
from chronos import config

broker, store = config.from_env()      # CHRONOS_BROKER_URL, CHRONOS_STORE_URL
runner = graph.Runner(compiled, store, broker=broker)
```

Embedded (the default): `memory://` broker, `sqlite:///chronos.db` store, nothing to start.
Distributed: `CHRONOS_BROKER_URL=redis://redis:6379/0` and
`CHRONOS_STORE_URL=postgresql://app@db/agents` on every server process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, NamedTuple

from chronos.store import from_url as store_from_url
from chronos.store.memory import MemoryStore
from chronos.store.postgres import PostgresStore
from chronos.store.sqlite import SQLiteStore
from chronos.stream import BrokerProtocol, broker_from_url

__all__ = [
    "BROKER_URL_ENV",
    "DEFAULT_BROKER_URL",
    "DEFAULT_STORE_URL",
    "STORE_URL_ENV",
    "Setup",
    "from_env",
    "from_urls",
]

BROKER_URL_ENV: Final = "CHRONOS_BROKER_URL"
STORE_URL_ENV: Final = "CHRONOS_STORE_URL"
DEFAULT_BROKER_URL: Final = "memory://"
DEFAULT_STORE_URL: Final = "sqlite:///chronos.db"


class Setup(NamedTuple):
    """The broker and the checkpoint store a configuration names."""

    broker: BrokerProtocol
    store: MemoryStore | SQLiteStore | PostgresStore


def from_urls(broker_url: str = DEFAULT_BROKER_URL, store_url: str = DEFAULT_STORE_URL) -> Setup:
    """The broker and store two URLs name (see `stream.broker_from_url`, `store.from_url`).

    Raises:
        ConfigurationError: an unknown scheme in either URL.
    """
    return Setup(broker_from_url(broker_url), store_from_url(store_url))


def from_env(environ: Mapping[str, str] | None = None) -> Setup:
    """The broker and store named by `CHRONOS_BROKER_URL` and `CHRONOS_STORE_URL`.

    Unset variables fall back to the embedded setup (`memory://`, `sqlite:///chronos.db`).

    Raises:
        ConfigurationError: an unknown scheme in either variable.
    """
    env = os.environ if environ is None else environ
    return from_urls(
        env.get(BROKER_URL_ENV) or DEFAULT_BROKER_URL, env.get(STORE_URL_ENV) or DEFAULT_STORE_URL
    )

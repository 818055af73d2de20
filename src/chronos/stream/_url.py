"""`broker_from_url`: one URL picks the in-process or the Redis broker."""

from __future__ import annotations

from typing import Any

from chronos.errors import ConfigurationError
from chronos.stream._broker import Broker
from chronos.stream._protocol import BrokerProtocol

__all__ = ["broker_from_url"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def broker_from_url(url: str, **options: Any) -> BrokerProtocol:
    """The broker a URL names: `memory://` in this process, `redis://` shared through Redis.

    ```python
    broker = stream.broker_from_url("memory://")                    # one process
    broker = stream.broker_from_url("redis://127.0.0.1:6379/0")     # many processes
    ```

    `options` go to the broker's constructor (`max_pending=...`, `replay_events=...`).
    The Redis broker is imported only when asked for, so redis is an optional extra.

    Raises:
        ConfigurationError: an unknown scheme.
        ImportError: a Redis URL without the `redis` extra installed.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "memory":
        return Broker(**options)
    if sep and scheme in _REDIS_SCHEMES:
        from chronos.stream.redis import RedisBroker

        return RedisBroker(url, **options)
    raise ConfigurationError(f"unknown broker URL {url!r}; use memory:// or redis://host:port/db")

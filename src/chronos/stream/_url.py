"""`broker_from_url`: one URL picks the in-process or the Redis broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chronos._url import parse_url
from chronos.errors import ConfigurationError
from chronos.stream._broker import Broker
from chronos.stream._protocol import BrokerProtocol

__all__ = ["broker_from_url"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
# Limits either broker takes from the URL's query; a Redis URL's others are redis-py's.
_LIMITS: dict[str, Callable[[str], Any]] = {
    "max_pending": int, "replay_events": int, "replay_seconds": float,
}


def broker_from_url(url: str, **options: Any) -> BrokerProtocol:
    """The broker a URL names: `memory://` in this process, `redis://` shared through Redis.

    ```python
    broker = stream.broker_from_url("memory://")                    # one process
    broker = stream.broker_from_url("redis://127.0.0.1:6379/0")     # many processes
    ```

    `options` go to the broker's constructor (`max_pending=...`, `replay_events=...`), as do
    the URL's query options of those names (`memory://?replay_events=4096`); a Redis URL also
    takes redis-py's (`socket_connect_timeout`, `health_check_interval`, ...). The Redis broker
    is imported only when asked for, so redis is an optional extra.

    Raises:
        ConfigurationError: an unknown scheme or a query option the broker does not understand.
        ImportError: a Redis URL without the `redis` extra installed.
    """
    parsed = parse_url(url, kind="broker")
    if parsed.scheme == "memory":
        return Broker(**parsed.options(_LIMITS), **options)
    if parsed.scheme in _REDIS_SCHEMES:
        from chronos.stream.redis import RedisBroker  # ImportError naming the extra

        limits = parsed.options(_LIMITS, others=True)
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS

        parsed.options({**_LIMITS, **{name: str for name in URL_QUERY_ARGUMENT_PARSERS}})
        return RedisBroker(parsed.without(_LIMITS), **limits, **options)
    raise ConfigurationError(
        f"unknown broker URL {parsed.shown!r}; use memory:// or redis://host:port/db"
    )

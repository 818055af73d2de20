"""Thread and run records: in this process, or in Redis so that every server process shares
them (`chronos serve --broker redis://...`: a run started through one process is found,
joined, streamed and cancelled through any other).

Records are small JSON objects (a thread's metadata, a run's status and result) kept by
collection and id; states stay in the checkpoint store and events in the broker. Beside them,
each server process keeps a heartbeat (`beat` / `alive`), so that the others can tell that a
run's process is gone (killed, crashed) and fail its run instead of showing it running forever.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from chronos._url import parse_url

__all__ = ["MemoryRecords", "Records", "RedisRecords", "records_for", "shares_records"]


class Records(Protocol):
    """JSON objects by collection and key: the server keeps its threads in `threads` and each
    thread's runs in `runs:<thread id>`, so that no lookup reads more than one thread's runs."""

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None: ...

    async def get(self, collection: str, key: str) -> dict[str, Any] | None: ...

    async def delete(self, collection: str, key: str) -> None: ...

    async def values(self, collection: str) -> list[dict[str, Any]]: ...

    async def drop(self, collection: str) -> None: ...

    async def beat(self, owner: str, seconds: float) -> None:
        """Declare `owner` (a server process) alive for `seconds` more."""
        ...

    async def alive(self, owner: str) -> bool:
        """Whether `owner` has declared itself alive and that time has not run out."""
        ...

    async def aclose(self) -> None: ...


class MemoryRecords:
    """Records of this process only. Values are stored as JSON, as Redis would, so that no
    caller can change a stored record by keeping a reference to it."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, bytes]] = {}
        self._alive_until: dict[str, float] = {}

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        self._data.setdefault(collection, {})[key] = orjson.dumps(value, default=repr)

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        raw = self._data.get(collection, {}).get(key)
        return None if raw is None else _object(raw)

    async def delete(self, collection: str, key: str) -> None:
        found = self._data.get(collection)
        if found is not None:
            found.pop(key, None)
            if not found:
                del self._data[collection]

    async def values(self, collection: str) -> list[dict[str, Any]]:
        return [_object(raw) for raw in self._data.get(collection, {}).values()]

    async def drop(self, collection: str) -> None:
        self._data.pop(collection, None)

    async def beat(self, owner: str, seconds: float) -> None:
        now = time.monotonic()
        self._alive_until = {o: t for o, t in self._alive_until.items() if t > now}
        self._alive_until[owner] = now + seconds

    async def alive(self, owner: str) -> bool:
        return self._alive_until.get(owner, 0.0) > time.monotonic()

    async def aclose(self) -> None:
        return None


class RedisRecords:
    """Records in Redis: one hash per collection under `key_prefix`."""

    def __init__(self, url: str, *, key_prefix: str = "chronos:server:") -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._prefix = key_prefix

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        await self._redis.hset(self._prefix + collection, key, orjson.dumps(value, default=repr))

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        raw = await self._redis.hget(self._prefix + collection, key)
        return None if raw is None else _object(raw)

    async def delete(self, collection: str, key: str) -> None:
        await self._redis.hdel(self._prefix + collection, key)

    async def values(self, collection: str) -> list[dict[str, Any]]:
        return [_object(raw) for raw in await self._redis.hvals(self._prefix + collection)]

    async def drop(self, collection: str) -> None:
        await self._redis.delete(self._prefix + collection)

    async def beat(self, owner: str, seconds: float) -> None:
        await self._redis.set(f"{self._prefix}alive:{owner}", b"1", px=max(1, int(seconds * 1000)))

    async def alive(self, owner: str) -> bool:
        return bool(await self._redis.exists(f"{self._prefix}alive:{owner}"))

    async def aclose(self) -> None:
        await self._redis.aclose()


def shares_records(broker_url: str) -> bool:
    """Whether a broker URL is Redis, beside which server processes share their records.

    Raises:
        ConfigurationError: not a URL.
    """
    return parse_url(broker_url, kind="broker").scheme in ("redis", "rediss", "unix")


def records_for(broker_url: str) -> Records:
    """Redis records beside a Redis broker (so that processes share them), else in memory."""
    if not shares_records(broker_url):
        return MemoryRecords()
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS

    parsed = parse_url(broker_url, kind="broker")
    # The broker's own query options (`max_pending`...) are not redis-py's.
    return RedisRecords(parsed.without(
        name for name, _ in parsed.query if name not in URL_QUERY_ARGUMENT_PARSERS))


def _object(raw: bytes | str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value

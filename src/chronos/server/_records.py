"""Thread and run records: in this process, or in Redis so that every server process shares
them (`chronos serve --broker redis://...`: a run started through one process is found,
joined, streamed and cancelled through any other).

Records are small JSON objects (a thread's metadata, a run's status and result) kept by
collection and id; states stay in the checkpoint store and events in the broker.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

__all__ = ["MemoryRecords", "Records", "RedisRecords", "records_for", "shares_records"]


class Records(Protocol):
    """JSON objects by collection and key: the server keeps its threads in `threads` and each
    thread's runs in `runs:<thread id>`, so that no lookup reads more than one thread's runs."""

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None: ...

    async def get(self, collection: str, key: str) -> dict[str, Any] | None: ...

    async def delete(self, collection: str, key: str) -> None: ...

    async def values(self, collection: str) -> list[dict[str, Any]]: ...

    async def drop(self, collection: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryRecords:
    """Records of this process only. Values are stored as JSON, as Redis would, so that no
    caller can change a stored record by keeping a reference to it."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, bytes]] = {}

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

    async def aclose(self) -> None:
        await self._redis.aclose()


def shares_records(broker_url: str) -> bool:
    """Whether a broker URL is Redis, beside which server processes share their records."""
    return broker_url.partition("://")[0].lower() in ("redis", "rediss", "unix")


def records_for(broker_url: str) -> Records:
    """Redis records beside a Redis broker (so that processes share them), else in memory."""
    return RedisRecords(broker_url) if shares_records(broker_url) else MemoryRecords()


def _object(raw: bytes | str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value

"""The heartbeat in the records, by which server processes tell that another one is gone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from chronos import server
from tests.stream.redis_helpers import REDIS_URL

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def records(request: pytest.FixtureRequest) -> AsyncIterator[server.Records]:
    if request.param == "memory":
        yield server.MemoryRecords()
        return
    redis = server.RedisRecords(REDIS_URL, key_prefix=f"chronos:test-beat:{uuid.uuid4().hex}:")
    yield redis
    await redis.aclose()


async def test_a_process_is_alive_until_its_heartbeat_runs_out(records: server.Records) -> None:
    assert not await records.alive("never-seen")
    await records.beat("steady", 60)
    await records.beat("fading", 0.05)
    assert await records.alive("steady")
    assert await records.alive("fading")
    await asyncio.sleep(0.2)
    assert await records.alive("steady")
    assert not await records.alive("fading")
    await records.beat("fading", 60)  # back
    assert await records.alive("fading")

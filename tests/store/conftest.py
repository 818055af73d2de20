from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chronos.store import CheckpointStore
from tests.store.backends import KINDS, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened

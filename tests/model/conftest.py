from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.model.replay import ReplayServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    """A real HTTP server on 127.0.0.1 replaying scripted responses (see `replay.py`)."""
    server = ReplayServer()
    yield server
    server.close()

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.model.replay import ReplayServer


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    """A real HTTP server on 127.0.0.1 replaying scripted responses (see `tests/model/replay.py`);
    each test scripts its own responses on it with `replay_server.script(...)`."""
    server = ReplayServer()
    yield server
    # A handler whose client left notices it between pieces; stopping the loop before that
    # would leave its task pending, which asyncio reports at exit.
    time.sleep(0.1)
    server.close()

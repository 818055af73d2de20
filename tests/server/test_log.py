"""The `chronos.server` log: a failure the server goes on past is a WARNING, by type only."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from starlette.testclient import TestClient

from chronos.server import MemoryRecords, create_app
from chronos.server._log import survived
from chronos.store import MemoryStore
from chronos.stream import Broker
from tests.server.api_graphs import agent

SECRET = "hunter2"


class HeartbeatFails(MemoryRecords):
    """In-memory records whose heartbeats fail after the first, as with Redis gone, with the
    URL (and its password) in the error's text, as redis-py puts it there."""

    def __init__(self) -> None:
        super().__init__()
        self.beats = 0

    async def beat(self, owner: str, seconds: float) -> None:
        self.beats += 1
        if self.beats > 1:
            raise ConnectionError(f"Error connecting to redis://:{SECRET}@10.0.0.9:6379/0")
        await super().beat(owner, seconds)


def test_a_failure_the_server_goes_on_past_is_logged_by_its_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app({"agent": agent}, MemoryStore(), Broker(), records=HeartbeatFails())
    with caplog.at_level(logging.WARNING, logger="chronos.server"), TestClient(app) as client:
        deadline = time.monotonic() + 15  # the first beat after open comes within 2 s
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = client.post("/runs/wait", json={"assistant_id": "agent", "input": {}})
    assert answer.status_code == 200  # it went on serving

    record = next(r for r in caplog.records if r.name == "chronos.server")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "heartbeat failed error=ConnectionError"
    assert record.chronos == {"failed": "heartbeat", "error": "ConnectionError"}  # type: ignore[attr-defined]
    assert SECRET not in caplog.text


def test_survived_goes_on_past_an_exception_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chronos.server"):
        with survived("run record at its end", run="r-1"):
            raise ConnectionError(f"redis://:{SECRET}@10.0.0.9:6379/0")
        with pytest.raises(asyncio.CancelledError), survived("marker", run="r-2"):
            raise asyncio.CancelledError
        with survived("nothing"):
            pass
    assert [r.getMessage() for r in caplog.records] == [
        "run record at its end failed run=r-1 error=ConnectionError"]
    assert SECRET not in caplog.text

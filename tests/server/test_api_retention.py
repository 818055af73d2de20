"""Long generations never push a run's graph events out of the broker's replay window."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph_sdk import get_client

from chronos import server, store, stream
from tests.server.api_graphs import WORDS, agent
from tests.server.api_server import serving_app

pytestmark = pytest.mark.anyio

_WINDOW = 50  # events each topic keeps for replay


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    broker = stream.Broker(replay_events=_WINDOW, max_pending=100_000)
    app = server.create_app({"agent": agent}, store=store.MemoryStore(), broker=broker)
    with serving_app(app) as url:
        yield url


async def test_a_reconnect_after_a_long_generation_gets_every_graph_event(url: str) -> None:
    client = get_client(url=url)
    thread = (await client.threads.create())["thread_id"]
    modes = ["updates", "custom", "messages-tuple"]
    parts = [p async for p in client.runs.stream(
        thread, "agent", input={"steps": [], "repeat": 100}, stream_mode=modes)]
    tokens = [p for p in parts if p.event == "messages"]
    assert len(tokens) == 100 * len(WORDS)  # live, nothing was lost
    after_plan = next(i for i, p in enumerate(parts) if p.event == "updates")
    resumed = [p async for p in client.runs.join_stream(
        thread, parts[0].data["run_id"], last_event_id=parts[after_plan].id, stream_mode=modes)]
    graph_events = [(p.event, p.data) for p in parts[after_plan + 1:] if p.event != "messages"]
    assert [(p.event, p.data) for p in resumed if p.event != "messages"] == graph_events
    # The tokens the window still holds are the newest ones, in order, ending the message.
    kept = [p.data[0]["content"] for p in resumed if p.event == "messages"]
    assert 0 < len(kept) <= _WINDOW
    assert kept == [p.data[0]["content"] for p in tokens[-len(kept):]]

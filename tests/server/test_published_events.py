"""A run publishes to the broker only what its own stream modes need, as LangGraph's server
does: read back from the broker's replay of the thread's topics, after each run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from chronos.server import create_app
from chronos.server._retention import run_topics
from chronos.store import MemoryStore
from chronos.stream import Broker
from tests.server.api_graphs import WORDS, agent


@pytest.fixture
def app() -> Iterator[tuple[TestClient, Broker]]:
    broker = Broker()
    with TestClient(create_app({"agent": agent}, MemoryStore(), broker)) as client:
        yield client, broker


def _published(client: TestClient, broker: Broker, thread_id: str) -> Counter[str]:
    """The types of every event the thread's runs published, from the broker's replay."""
    async def read() -> list[str]:
        async with broker.subscribe("probe", run_topics(thread_id),
                                    last_event_id="0-0") as subscription:
            return [e.type for e in await subscription.receive_batch(timeout=0.2)]

    assert client.portal is not None
    return Counter(client.portal.call(read))


def _run(client: TestClient, route: str, **body: Any) -> str:
    thread_id = str(client.post("/threads", json={}).json()["thread_id"])
    response = client.post(f"/threads/{thread_id}/runs/{route}",
                           json={"assistant_id": "agent", "input": {"steps": []}, **body})
    assert response.status_code == 200
    return thread_id


def test_a_waited_run_publishes_no_tokens_and_no_custom_events(
        app: tuple[TestClient, Broker]) -> None:
    client, broker = app
    published = _published(client, broker, _run(client, "wait"))
    assert published["token"] == published["custom"] == 0
    # What the state modes, the run's end and the node metrics read still goes out.
    assert published["node_end"] == 3
    assert published["run_start"] == published["run_end"] == published["completed"] == 1


def test_a_run_streaming_messages_publishes_every_token(app: tuple[TestClient, Broker]) -> None:
    client, broker = app
    published = _published(client, broker, _run(client, "stream",
                                                 stream_mode=["messages-tuple"]))
    assert published["token"] == len(WORDS)
    assert published["custom"] == 0


def test_a_run_streaming_custom_or_events_publishes_what_they_read(
        app: tuple[TestClient, Broker]) -> None:
    client, broker = app
    custom = _published(client, broker, _run(client, "stream", stream_mode=["custom"]))
    assert (custom["custom"], custom["token"]) == (3, 0)
    events = _published(client, broker, _run(client, "stream", stream_mode=["events"]))
    assert (events["custom"], events["token"]) == (3, len(WORDS))

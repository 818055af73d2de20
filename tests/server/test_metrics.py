"""`/metrics` of a real `chronos serve`, scraped with prometheus_client's own parser during
and after a load of concurrent streamed runs: the counts are what the clients saw."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from tests.server.api_server import Served, serving

pytestmark = pytest.mark.anyio
RUNS = 12


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving("tests.server.metrics_graphs:held") as s:
        yield s


def scrape(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and labels."""
    response = httpx.get(f"{served.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


async def test_metrics_count_what_concurrent_clients_got(served: Served, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    client = get_client(url=served.url)
    holding = asyncio.Semaphore(0)
    received: list[int] = []

    async def one(n: int) -> None:
        thread = await client.threads.create()
        parts = 0
        async for part in client.runs.stream(
                thread["thread_id"], "held", input={"n": n, "gate": str(gate), "fail": n == 0},
                stream_mode="custom"):
            parts += 1
            if part.event == "custom" and part.data.get("run") == n:
                holding.release()
        received.append(parts)

    before = scrape(served)
    load = asyncio.gather(*(one(n) for n in range(RUNS)))
    for _ in range(RUNS):
        await holding.acquire()
    during = scrape(served)
    gate.unlink()
    await load
    after = scrape(served)

    def delta(sample: str, **labels: str) -> float:
        key = (sample, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # During: every run holds in its node, every client's stream is open.
    streams = ("chronos_sse_streams_open", ())
    assert during[streams] == before[streams] + RUNS
    assert during[("chronos_runs_running", ())] == RUNS
    # After: what each client received, and each run's end, counted once.
    assert after[streams] == before[streams]
    assert after[("chronos_runs_running", ())] == 0
    assert delta("chronos_sse_events_delivered_total") == sum(received)
    assert delta("chronos_runs_total", status="success") == RUNS - 1
    assert delta("chronos_runs_total", status="error") == 1
    assert delta("chronos_run_duration_seconds_count", status="success") == RUNS - 1
    assert delta("chronos_node_duration_seconds_count", graph="held", node="hold") == RUNS
    assert delta("chronos_node_duration_seconds_count", graph="held", node="finish") == RUNS - 1
    assert delta("chronos_sse_gaps_total", reason="overflow") == 0


async def test_a_resume_from_an_unknown_event_counts_a_gap(served: Served) -> None:
    client = get_client(url=served.url)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "held",
                                   input={"n": 0, "gate": "/nonexistent"})
    await client.runs.join(thread["thread_id"], run["run_id"])
    before = scrape(served)
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.get(f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream",
                                  headers={"Last-Event-ID": "1-1"})
    after = scrape(served)
    gaps: dict[str, Any] = {labels: after[(name, labels)] - before.get((name, labels), 0.0)
                            for name, labels in after if name == "chronos_sse_gaps_total"}
    assert b": gap " in response.content
    assert sum(gaps.values()) == 1

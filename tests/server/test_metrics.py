"""`/metrics` of a real `chronos serve`, scraped with prometheus_client's own parser during
and after a load of concurrent streamed runs: the counts are what the clients saw."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.util._once import Once
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from chronos.server import create_app
from chronos.server._metrics import ServerMetrics
from chronos.store import MemoryStore
from chronos.stream import Broker, Event
from tests.server.api_server import Served, serving, serving_app
from tests.server.dialects.graphs import chat
from tests.server.dialects.requests import DIALECT_IDS, DIALECTS
from tests.server.metrics_graphs import USAGE, held

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


@pytest.mark.anyio
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
    # One model call per successful run, its usage as the model reported it.
    assert delta("chronos_tokens_total", type="input") == (RUNS - 1) * USAGE.input_tokens
    assert delta("chronos_tokens_total", type="output") == (RUNS - 1) * USAGE.output_tokens


@pytest.mark.anyio
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


@contextlib.contextmanager
def metered() -> Iterator[InMemoryMetricReader]:
    """An SDK meter provider for one test (the API sets one once per process: reset here)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    _reset_meter_provider()
    metrics.set_meter_provider(provider)
    try:
        yield reader
    finally:
        provider.shutdown()
        _reset_meter_provider()


@pytest.mark.parametrize("request_for", DIALECTS, ids=DIALECT_IDS)
def test_a_dialect_stream_counts_as_a_run_stream(request_for: Any) -> None:
    with serving_app(create_app({"chat": chat}, MemoryStore(), Broker())) as url:
        served = Served(url, Path(), 0)
        before = scrape(served)
        path, body = request_for("chat", "slow")  # 40 tokens, 50 ms apart
        with httpx.stream("POST", f"{url}{path}", json=body, timeout=30) as response:
            chunks = response.iter_bytes()
            text = next(chunks)
            during = scrape(served)
            text += b"".join(chunks)
        after = scrape(served)

    frames = [f for f in text.split(b"\n\n") if f.strip() and not f.startswith(b":")]
    assert len(frames) > 40
    open_now = ("chronos_sse_streams_open", ())
    delivered = ("chronos_sse_events_delivered_total", ())
    assert (before[open_now], during[open_now], after[open_now]) == (0, 1, 0)
    assert after[delivered] - before[delivered] == len(frames)


def _reset_meter_provider() -> None:
    internal = metrics._internal  # type: ignore[attr-defined]
    internal._METER_PROVIDER_SET_ONCE = Once()
    internal._METER_PROVIDER = None


def test_opentelemetry_metrics_when_a_meter_provider_is_set_before_the_app() -> None:
    with metered() as reader, TestClient(create_app({"held": held}, MemoryStore(), Broker())
                                         ) as client:
        check_otel_metrics(client, reader)


def test_opentelemetry_metrics_when_a_meter_provider_is_set_after_the_app() -> None:
    with TestClient(create_app({"held": held}, MemoryStore(), Broker())) as client:
        # A run before any provider is set: counted by Prometheus alone.
        assert client.post("/runs/wait", json={
            "assistant_id": "held", "input": {"n": 9, "gate": "/nonexistent"}}).status_code == 200
        with metered() as reader:
            check_otel_metrics(client, reader)


def check_otel_metrics(client: TestClient, reader: InMemoryMetricReader) -> None:
    """Three runs (one failing) counted by the meter provider `reader` reads."""
    for n in range(3):
        done = client.post("/runs/wait", json={
            "assistant_id": "held", "input": {"n": n, "gate": "/nonexistent", "fail": n == 0}})
        assert done.status_code == 200
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:  # type: ignore[union-attr]
        for scope in resource.scope_metrics:
            assert scope.scope.name == "chronos"
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)

    runs = {p.attributes["status"]: p.value for p in points["chronos.runs"]}
    assert runs == {"success": 2, "error": 1}
    assert [p.value for p in points["chronos.runs.running"]] == [0]
    nodes = {p.attributes["chronos.node"]: p.count for p in points["chronos.node.duration"]}
    assert nodes == {"hold": 3, "finish": 2}
    assert sum(p.count for p in points["chronos.run.duration"]) == 3
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": 2 * USAGE.input_tokens, "output": 2 * USAGE.output_tokens}


def test_node_durations_are_timed_within_each_run() -> None:
    metrics = ServerMetrics()
    observe = metrics.run_events("g")
    assert metrics.registry is not None

    def event(type: str, run_id: str, timestamp: float) -> Event:
        return Event(type, {"run_id": run_id, "node_id": "n", "path": [],
                            "timestamp": timestamp, "data": None})

    # Two runs of the same node overlap: run a for 10 s, run b (started later) for 1 s.
    for type, run_id, timestamp in [("node_start", "a", 0.0), ("node_start", "b", 5.0),
                                    ("node_end", "b", 6.0), ("node_end", "a", 10.0),
                                    ("completed", "a", 10.0), ("completed", "b", 6.0)]:
        observe(event(type, run_id, timestamp))
    labels = {"graph": "g", "node": "n"}
    sample = metrics.registry.get_sample_value
    assert sample("chronos_node_duration_seconds_count", labels) == 2
    assert sample("chronos_node_duration_seconds_sum", labels) == 11.0
    assert sample("chronos_node_duration_seconds_bucket", {**labels, "le": "2.5"}) == 1

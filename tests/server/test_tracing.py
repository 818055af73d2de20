"""A served run's trace context reaches its clients, and a caller's trace is honoured.

The official SDK client reads the run's `traceparent` in the `metadata` event's data, every
streaming response (the LangGraph API's and the dialects') has it as a header, and it is
the context of the run's span as the OpenTelemetry SDK's in-memory exporter has it. A
caller's `traceparent` header makes the run's span its child. Untraced, nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chronos.server import create_app
from chronos.store import MemoryStore
from chronos.stream import Broker
from tests.server.api_graphs import agent, asking
from tests.server.api_server import serving_app
from tests.server.dialects.graphs import chat
from tests.server.dialects.requests import DIALECT_IDS, DIALECTS
from tests.tracing import traced

CALLER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN = 0x00F067AA0BA902B7
CALLER = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


@pytest.fixture
def tracing() -> Iterator[tuple[str, InMemorySpanExporter]]:
    """A traced process serving `agent`, `asking` and `chat` (in a thread): URL, spans."""
    with traced() as exporter, serving_app(create_app(
            {"agent": agent, "asking": asking, "chat": chat}, MemoryStore(), Broker())) as url:
        yield url, exporter


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def runs_spans(exporter: InMemorySpanExporter, graph_id: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"invoke_agent {graph_id}"]


def test_the_sdk_client_reads_the_runs_traceparent_in_its_metadata(
    tracing: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = tracing
    client = get_sync_client(url=url)
    parts = list(client.runs.stream(None, "agent", input={"topic": "tea"},
                                    stream_mode=["values", "messages-tuple"]))

    assert parts[0].event == "metadata"
    [run] = runs_spans(exporter, "agent")
    assert parts[0].data["traceparent"] == traceparent_of(run)
    assert parts[0].data["run_id"]
    assert parts[-1].event == "values"  # the stream went on as before
    assert parts[-1].data["steps"] == ["plan", "write", "review"]
    # The runner took the span the server started: one per run, the nodes beneath it.
    nodes = [s for s in exporter.get_finished_spans() if s.name.startswith("node ")]
    assert len(nodes) == 3
    assert {s.parent.span_id for s in nodes if s.parent} == {run.context.span_id}
    assert (run.attributes or {})["chronos.run.status"] == "completed"
    assert (run.attributes or {})["chronos.run.id"]


def test_a_callers_traceparent_makes_the_run_its_child(
    tracing: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = tracing
    with httpx.stream("POST", f"{url}/runs/stream", headers={"traceparent": CALLER},
                      json={"assistant_id": "agent", "input": {}, "stream_mode": "values"},
                      timeout=30) as response:
        header = response.headers["traceparent"]
        body = response.read().decode()

    [run] = runs_spans(exporter, "agent")
    assert header == traceparent_of(run)
    assert f'"traceparent":"{header}"' in body.split("\n\n")[0]  # the metadata event
    assert run.context.trace_id == CALLER_TRACE
    assert run.parent is not None
    assert run.parent.span_id == CALLER_SPAN


def test_a_resume_continues_the_trace_and_a_join_is_told_it(
    tracing: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = tracing
    client = get_sync_client(url=url)
    thread = client.threads.create()
    paused = client.runs.wait(thread["thread_id"], "asking", input={"topic": "tea"})
    assert paused == {"steps": ["plan"], "topic": "tea"}  # asked, waiting for the answer
    resumed = client.runs.create(thread["thread_id"], "asking", command={"resume": "yes"})
    joined = list(client.runs.join_stream(thread["thread_id"], resumed["run_id"],
                                          last_event_id="-1"))
    with httpx.Client(base_url=url) as http:
        header = http.get(f"/threads/{thread['thread_id']}/runs/{resumed['run_id']}/stream",
                          headers={"Last-Event-ID": "-1"}).headers["traceparent"]

    first, second = sorted(runs_spans(exporter, "asking"), key=lambda s: s.start_time or 0)
    assert joined[0].event == "metadata"
    assert joined[0].data["traceparent"] == header == traceparent_of(second)
    assert second.context.trace_id == first.context.trace_id
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id
    assert (second.attributes or {})["chronos.run.resumed"] is True


def test_a_run_that_fails_before_its_runner_ends_its_span_failed(
    tracing: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = tracing
    with httpx.Client(base_url=url) as http:
        thread = http.post("/threads", json={}).json()["thread_id"]
        answer = http.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "agent", "command": {"resume": "yes"}})  # nothing to resume
    assert answer.json()["__error__"]["error"] == "CheckpointNotFound"

    [run] = runs_spans(exporter, "agent")
    assert run.status.status_code is StatusCode.ERROR
    assert answer.headers["traceparent"] == traceparent_of(run)


@pytest.mark.parametrize("request_for", DIALECTS, ids=DIALECT_IDS)
def test_a_dialect_stream_has_the_runs_traceparent_header(
    tracing: tuple[str, InMemorySpanExporter], request_for: Any,
) -> None:
    url, exporter = tracing
    path, body = request_for("chat", "hi")
    with httpx.stream("POST", f"{url}{path}", json=body, headers={"traceparent": CALLER},
                      timeout=30) as response:
        assert response.status_code == 200
        header = response.headers["traceparent"]
        response.read()

    [run] = runs_spans(exporter, "chat")
    assert header == traceparent_of(run)
    assert run.context.trace_id == CALLER_TRACE
    assert (run.attributes or {})["chronos.run.status"] == "completed"
    # The scripted model has neither `name` nor `model`: its call is traced all the same.
    assert any(s.name.startswith("chat") for s in exporter.get_finished_spans())


def test_untraced_clients_see_no_change() -> None:
    with serving_app(create_app({"agent": agent}, MemoryStore(), Broker())) as url:
        client = get_sync_client(url=url)
        parts = list(client.runs.stream(None, "agent", input={}, stream_mode="values",
                                        headers={"traceparent": CALLER}))
        with httpx.stream("POST", f"{url}/runs/stream", headers={"traceparent": CALLER},
                          json={"assistant_id": "agent", "input": {}}) as response:
            response.read()
    assert parts[0].event == "metadata"
    assert set(parts[0].data) == {"run_id", "attempt"}
    assert "traceparent" not in response.headers

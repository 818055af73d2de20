"""OpenTelemetry spans of runs, node attempts and model calls (`chronos._telemetry`).

Checked with the SDK's in-memory exporter, and once through a real OTLP/HTTP export to a
receiver started here, decoded with `opentelemetry-proto`.
"""

from __future__ import annotations

import asyncio
import http.server
import itertools
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from chronos import _telemetry, graph, stream
from chronos.errors import NodeError
from chronos.model import ChatRequest, ChatResponse, Message
from chronos.store import PostgresStore
from tests.model.conftest import AWS_ENVIRONMENT
from tests.model.recordings import PROVIDERS, Recording, load_all, recording_id
from tests.model.replay import ReplayServer, Reply
from tests.store.backends import POSTGRES_URL
from tests.tracing import by_name, traced

ROOT = Path(__file__).resolve().parents[1]
REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])


def chain(*nodes: tuple[str, Any], name: str = "g") -> graph.CompiledGraph:
    g = graph.StateGraph(name)
    for node_id, function in nodes:
        if isinstance(function, graph.CompiledGraph):
            g.add_subgraph(node_id, function)
        else:
            g.add_node(node_id, function)
    ids = [node_id for node_id, _ in nodes]
    g.set_entry_point(ids[0])
    for a, b in itertools.pairwise(ids):
        g.add_edge(a, b)
    return g.set_finish_point(ids[-1]).compile()


async def step(state: dict[str, Any]) -> dict[str, Any]:
    return {"n": state.get("n", 0) + 1}


def approval_graph() -> graph.CompiledGraph:
    """draft -> ask (interrupts) -> publish: paused by one process, resumed by another."""

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        return {"answer": graph.interrupt("publish?")}

    return chain(("draft", step), ("ask", ask), ("publish", step), name="approval")


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# --- off by default ---------------------------------------------------------------------------


def test_without_a_tracer_provider_nothing_is_imported_or_traced() -> None:
    # A fresh interpreter: a run, a model glue import and a broker, and no opentelemetry.
    code = (
        "import asyncio, sys\n"
        "from chronos import graph, stream, _telemetry\n"
        "async def n(s): return {'x': 1}\n"
        "g = graph.StateGraph('g').add_node('n', n).set_entry_point('n').set_finish_point('n')\n"
        "runner = graph.Runner(g.compile(), broker=stream.Broker())\n"
        "assert asyncio.run(runner.run('s', {})).status == 'completed'\n"
        "assert _telemetry.tracer() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_an_imported_api_without_a_provider_traces_nothing() -> None:
    assert _telemetry.tracer() is None  # opentelemetry is imported here, no provider is set
    with traced():
        assert _telemetry.tracer() is not None
    assert _telemetry.tracer() is None


# --- runs and nodes ---------------------------------------------------------------------------


def test_a_run_nests_node_spans_and_a_subgraph_holds_its_own() -> None:
    inner = chain(("a", step), ("b", step), name="inner")
    outer = chain(("prep", step), ("inner", inner), ("finish", step), name="outer")
    with traced() as exporter:
        result = asyncio.run(graph.Runner(outer).run("s1", {}))
    spans = by_name(exporter.get_finished_spans())

    assert set(spans) == {"invoke_agent outer", "node prep", "node inner", "node a", "node b",
                          "node finish"}
    run = spans["invoke_agent outer"]
    assert run.parent is None
    for name in ("node prep", "node inner", "node finish"):
        assert parent_of(spans[name]) == span_id(run)
    for name in ("node a", "node b"):
        assert parent_of(spans[name]) == span_id(spans["node inner"])
        assert spans[name].attributes["chronos.node.path"] == ("inner",)
    assert {s.get_span_context().trace_id for s in spans.values()} == {  # type: ignore[union-attr]
        run.get_span_context().trace_id}  # type: ignore[union-attr]
    assert dict(run.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "outer",
        "gen_ai.conversation.id": "s1", "chronos.run.id": result.run_id,
        "chronos.run.resumed": False, "chronos.run.status": "completed", "chronos.run.steps": 5,
    }
    assert run.status.status_code is StatusCode.UNSET
    assert spans["node prep"].attributes == {"chronos.node.id": "prep", "chronos.node.attempt": 1}


def test_each_retry_is_a_span_of_its_own() -> None:
    failures = [ConnectionError("reset by peer")]

    async def flaky(state: dict[str, Any]) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return {"ok": True}

    g = (graph.StateGraph("retrying")
         .add_node("flaky", flaky, retry=graph.RetryPolicy(initial_interval=0, jitter=False))
         .set_entry_point("flaky").set_finish_point("flaky").compile())
    with traced() as exporter:
        asyncio.run(graph.Runner(g).run("s", {}))
    first, second = (s for s in exporter.get_finished_spans() if s.name == "node flaky")

    assert (first.attributes or {})["chronos.node.attempt"] == 1
    assert (second.attributes or {})["chronos.node.attempt"] == 2
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "ConnectionError: reset by peer"
    assert (first.attributes or {})["error.type"] == "builtins.ConnectionError"
    [event] = first.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ConnectionError"
    assert second.status.status_code is StatusCode.UNSET
    assert parent_of(first) == parent_of(second)


def test_a_failed_run_carries_the_typed_error() -> None:
    async def broken(state: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bad input")

    with traced() as exporter, pytest.raises(NodeError):
        asyncio.run(graph.Runner(chain(("broken", broken), name="failing")).run("s", {}))
    spans = by_name(exporter.get_finished_spans())

    run, node = spans["invoke_agent failing"], spans["node broken"]
    assert (run.attributes or {})["error.type"] == "chronos.errors.NodeError"
    assert (run.attributes or {})["chronos.run.status"] == "failed"
    assert run.status.status_code is StatusCode.ERROR
    assert (node.attributes or {})["error.type"] == "builtins.ValueError"
    assert [e.name for e in node.events] == ["exception"]


def test_a_cancelled_run_ends_its_spans() -> None:
    started = asyncio.Event()

    async def slow(state: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(60)
        return {}

    async def cancel_it() -> None:
        task = asyncio.create_task(graph.Runner(chain(("slow", slow))).run("s", {}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with traced() as exporter:
        asyncio.run(cancel_it())
    spans = by_name(exporter.get_finished_spans())
    assert (spans["invoke_agent g"].attributes or {})["chronos.run.status"] == "cancelled"
    cancelled = (spans["node slow"].attributes or {})["error.type"]
    assert cancelled == "asyncio.exceptions.CancelledError"


async def _pause(table: str, session: str) -> None:
    async with PostgresStore(POSTGRES_URL, table=table) as store:
        paused = await graph.Runner(approval_graph(), store).run(session, {})
        assert paused.status == "paused"


async def _drop(table: str) -> None:
    async with PostgresStore(POSTGRES_URL, table=table) as store:
        await store.drop_table()


def test_a_resume_in_another_process_continues_the_trace() -> None:
    table, session = f"trace_{uuid.uuid4().hex[:12]}", "s-" + uuid.uuid4().hex[:8]
    try:
        with traced() as exporter:
            asyncio.run(_pause(table, session))
        first = by_name(exporter.get_finished_spans())
        out = subprocess.run([sys.executable, "-m", "tests.trace_worker", table, session],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    finally:
        asyncio.run(_drop(table))
    resumed = {s["name"]: s for s in map(orjson.loads, out.stdout.splitlines())}

    run = first["invoke_agent approval"]
    assert (first["node ask"].attributes or {})["chronos.node.attempt"] == 1
    trace_id = f"{run.get_span_context().trace_id:032x}"  # type: ignore[union-attr]
    assert set(resumed) == {"invoke_agent approval", "node ask", "node publish"}
    assert {s["trace_id"] for s in resumed.values()} == {trace_id}
    # The resumed run hangs under the run that paused, its nodes under it.
    assert resumed["invoke_agent approval"]["parent_id"] == f"{span_id(run):016x}"
    again = resumed["invoke_agent approval"]["span_id"]
    assert resumed["node ask"]["parent_id"] == resumed["node publish"]["parent_id"] == again


# --- the broker -------------------------------------------------------------------------------


def test_every_event_on_the_broker_carries_the_runs_traceparent() -> None:
    async def run() -> list[stream.Event]:
        broker = stream.Broker()
        subscription = broker.subscribe("watcher", ["s"])
        await graph.Runner(chain(("a", step), ("b", step)), broker=broker).run("s", {})
        events = list(await subscription.receive_batch(timeout=1.0))
        await broker.aclose()
        return events

    with traced() as exporter:
        events = asyncio.run(run())
    expected = traceparent(by_name(exporter.get_finished_spans())["invoke_agent g"])

    assert [e.type for e in events][-1] == "completed"
    assert {e.data["traceparent"] for e in events} == {expected}
    # ...and so every SSE frame, which is this JSON.
    assert all(f'"traceparent":"{expected}"'.encode() in e.json() for e in events)


# --- model calls, per provider's recorded streams ---------------------------------------------


def _one_per_api() -> list[Recording]:
    chosen: dict[str, Recording] = {}
    for recording in load_all():
        expected = recording.expected
        if (recording.api in PROVIDERS and recording.status < 400 and not expected.get("error")
                and expected.get("usage") and recording.api not in chosen):
            chosen[recording.api] = recording
    return list(chosen.values())


def _run_chat(provider: Any, *, sync: bool = False, whole: bool = False) -> ChatResponse:
    """One model call in a node: streamed into the run, or `whole` (`provider.chat`)."""
    responses: list[ChatResponse] = []

    async def chat(state: dict[str, Any]) -> dict[str, Any]:
        responses.append(await (provider.chat(REQUEST) if whole
                                else graph.stream_chat(provider, REQUEST)))
        return {}

    def chat_sync(state: dict[str, Any]) -> dict[str, Any]:
        responses.append(provider.chat_sync(REQUEST) if whole
                         else graph.stream_chat_sync(provider, REQUEST))
        return {}

    async def go() -> None:
        async with provider:
            await graph.Runner(chain(("chat", chat_sync if sync else chat))).run("s", {})

    asyncio.run(go())
    return responses[0]


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    # Its own server: `asyncio.run` per test closes the loop a shared client would keep.
    replay = ReplayServer()
    yield replay
    replay.close()


@pytest.mark.parametrize("how", ["stream_chat", "chat", "chat_sync"])
@pytest.mark.parametrize("recording", _one_per_api(), ids=recording_id)
def test_a_model_call_span_follows_the_genai_conventions(
    recording: Recording, how: str, server: ReplayServer, aws_environment: None
) -> None:
    body = Reply(status=recording.status, body=recording.body, seed=zlib.crc32(recording.body),
                 headers={"content-type": recording.content_type})
    provider = PROVIDERS[recording.api](recording, server.script(body).base_url)
    with traced() as exporter:
        response = _run_chat(provider, whole=how != "stream_chat", sync=how == "chat_sync")
    spans = by_name(exporter.get_finished_spans())
    call = spans[f"chat {provider.model}"]
    attributes = dict(call.attributes or {})

    assert call.kind is SpanKind.CLIENT
    assert parent_of(call) == span_id(spans["node chat"])
    first_chunk = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert isinstance(first_chunk, float)
    assert 0 < first_chunk * 1e9 <= call.end_time - call.start_time  # type: ignore[operator]
    expected: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": {
            "gemini": "gcp.gemini", "bedrock": "aws.bedrock", "azure_openai": "azure.ai.openai",
            "openai_responses": "openai"}.get(provider.name, provider.name),
        "gen_ai.request.model": provider.model,
        "gen_ai.response.finish_reasons": (response.raw_stop_reason,),
    }
    if response.model:
        expected["gen_ai.response.model"] = response.model
    if response.id:
        expected["gen_ai.response.id"] = response.id
    usage = response.usage
    assert usage is not None
    assert usage.raw
    for name, count in (("input_tokens", usage.input_tokens),
                        ("output_tokens", usage.output_tokens),
                        ("cache_read.input_tokens", usage.cached_tokens),
                        ("cache_creation.input_tokens", usage.cache_write_tokens),
                        ("reasoning.output_tokens", usage.reasoning_tokens)):
        if count is not None:
            expected[f"gen_ai.usage.{name}"] = count
    assert attributes == expected
    if recording.expected.get("model"):
        assert attributes["gen_ai.response.model"] == recording.expected["model"]


def _openai(server: ReplayServer, *replies: Reply) -> Any:
    return PROVIDERS["chat.completions"](_openai_recording(), server.script(*replies).base_url)


def _openai_recording() -> Recording:
    return next(r for r in _one_per_api() if r.api == "chat.completions")


def _reply(recording: Recording) -> Reply:
    return Reply(body=recording.body, headers={"content-type": recording.content_type})


def test_message_content_is_recorded_only_when_asked(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = _openai_recording()
    with traced() as exporter:
        response = _run_chat(_openai(server, _reply(recording)))
        monkeypatch.setenv(_telemetry.CAPTURE_CONTENT_ENV, "true")
        _run_chat(_openai(server, _reply(recording)), sync=True)
    plain, captured = (s for s in exporter.get_finished_spans() if s.name.startswith("chat "))

    assert not any("messages" in key for key in plain.attributes or {})
    attributes = captured.attributes or {}
    assert orjson.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello"}]}]
    [output] = orjson.loads(str(attributes["gen_ai.output.messages"]))
    text = [{"type": "text", "content": response.content}] if response.content else []
    assert output["parts"] == [*text, *(
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in response.tool_calls)]
    assert output["parts"]  # the recording says something
    assert output["finish_reason"] == response.raw_stop_reason


@pytest.mark.parametrize("whole", [False, True], ids=["stream_chat", "chat"])
def test_a_failed_model_call_has_the_providers_error(server: ReplayServer, whole: bool) -> None:
    provider = _openai(server, Reply(status=401, body=b'{"error": {"message": "no"}}',
                                     headers={"content-type": "application/json"}))
    with traced() as exporter, pytest.raises(NodeError) as info:
        _run_chat(provider, whole=whole)
    call = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat "))

    cause = info.value.__cause__
    assert cause is not None
    kind = type(cause)
    assert (call.attributes or {})["error.type"] == f"{kind.__module__}.{kind.__qualname__}"
    assert call.status.status_code is StatusCode.ERROR
    assert [e.name for e in call.events] == ["exception"]


# --- a real OTLP/HTTP export ------------------------------------------------------------------


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Collect)
        self.bodies: list[tuple[str, bytes]] = []


class _Collect(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind)


def test_spans_arrive_over_otlp_http_as_the_exporter_had_them() -> None:
    receiver = _Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver.server_port}/v1/traces")
        inner = chain(("a", step), name="inner")
        with traced(BatchSpanProcessor(exporter)) as memory:
            asyncio.run(graph.Runner(chain(("prep", step), ("inner", inner))).run("s", {}))
            kept = memory.get_finished_spans()
        # Leaving `traced` shut the provider down, which flushed the batch.
    finally:
        receiver.shutdown()
        thread.join()
    arrived = {}
    for path, body in receiver.bodies:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                assert scope.scope.name == "chronos"
                for span in scope.spans:
                    arrived[span.name] = (
                        int.from_bytes(span.trace_id, "big"), int.from_bytes(span.span_id, "big"),
                        int.from_bytes(span.parent_span_id, "big") or None,
                        {a.key: _value(a.value) for a in span.attributes},
                        span.start_time_unix_nano, span.end_time_unix_nano,
                    )

    had = {s.name: (s.get_span_context().trace_id, span_id(s),  # type: ignore[union-attr]
                    parent_of(s), dict(s.attributes or {}), s.start_time, s.end_time)
           for s in kept}
    assert set(had) == {"invoke_agent g", "node prep", "node inner", "node a"}
    assert arrived == had

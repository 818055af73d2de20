"""An API key never shows up anywhere chronos writes: a test that greps all of it.

Every HTTP provider is given a distinctive fake key (as `api_key=` and through its environment
variable), one that looks like no vendor's key format so only exact-secret redaction can hide
it. Each is driven against the local replay server through failures that tempt a leak: a 401
and a 429 whose bodies quote the key, a 500, a dropped connection, a stall, a vendor error
event and a malformed chunk quoting the key, and an unreachable server. Then a graph whose
node streams from a provider and fails on a 401 runs with a store and a broker, traced with
OpenTelemetry (message content recorded too), and once more served by `chronos serve`'s app.

Collected, and searched for the key: every log record of every logger at DEBUG (formatted,
with tracebacks), str/repr/attributes/full tracebacks of every exception and of everything
chained to it (with the request and headers httpx's errors keep), repr of providers
and of the HTTP requests they build, every runner stream event (a model call's usage among
them), every event on the broker (in-process, and the raw entries in Redis), every checkpoint
(its usage metadata too), the raw bytes of the SQLite files and of the Postgres rows, every
span (as the SDK exports it to JSON), and the server's `/metrics`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg
import pytest
import redis.asyncio as aioredis
from botocore.credentials import Credentials
from opentelemetry.trace import StatusCode
from starlette.testclient import TestClient

from chronos import _telemetry, graph
from chronos.errors import ChronosError, NodeError
from chronos.graph import event_payload
from chronos.model import (
    AnthropicProvider,
    AzureOpenAIProvider,
    ChatRequest,
    CohereProvider,
    FallbackProvider,
    GeminiProvider,
    Message,
    OllamaProvider,
    OpenAIProvider,
    OpenAIResponsesProvider,
    RetryPolicy,
)
from chronos.model._provider import HTTPProvider
from chronos.model.bedrock import BedrockProvider
from chronos.server import create_app
from chronos.store import CheckpointStore, MemoryStore, PostgresStore, SQLiteStore
from chronos.stream import Broker, BrokerProtocol, Event
from chronos.stream.redis import RedisBroker
from tests.model.eventstream_frames import exception as aws_exception
from tests.model.eventstream_frames import frame
from tests.model.replay import ReplayServer, Reply
from tests.store.backends import POSTGRES_URL, unique_table
from tests.stream.redis_helpers import REDIS_URL, delete_prefix, require_redis, unique_prefix
from tests.tracing import traced

KEY = "CHRONOS-FAKE-KEY-q7Zt3Wx9Lm2Vb8Np"  # matches none of the key-like patterns on purpose
REQ = ChatRequest(messages=[Message(role="user", content="Tell me a story about a robot")])
FAST = RetryPolicy(max_retries=1, initial_backoff=0.01)
ENV = ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
       "GOOGLE_API_KEY", "COHERE_API_KEY", "CO_API_KEY", "OLLAMA_API_KEY"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Evidence:
    """Everything collected, as text; `leaks()` says where the key appears."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, value: Any) -> None:
        if isinstance(value, bytes | bytearray | memoryview):
            text = bytes(value).decode("latin-1")
        else:
            text = value if isinstance(value, str) else repr(value)
        self.items.append((where, text))

    def error(self, where: str, exc: BaseException) -> None:
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        chain: BaseException | None = exc
        while chain is not None:
            self.add(f"{where}: attributes of {type(chain).__name__}", vars(chain))
            self.add(f"{where}: args", chain.args)
            # httpx's errors keep the request; its headers' repr masks only Authorization.
            with contextlib.suppress(RuntimeError, AttributeError):
                request = chain.request  # type: ignore[attr-defined]
                self.add(f"{where}: request of {type(chain).__name__}", request)
                self.add(f"{where}: headers of {type(chain).__name__}", request.headers)
            chain = chain.__cause__ or chain.__context__

    def leaks(self) -> list[str]:
        return [f"{where}: ...{text[max(0, text.find(KEY) - 80):text.find(KEY) + 40]!r}..."
                for where, text in self.items if KEY in text]


class Capture(logging.Handler):
    def __init__(self, evidence: Evidence) -> None:
        super().__init__(logging.DEBUG)
        self.evidence = evidence
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.evidence.add(f"log {record.name}", self.format(record))
        self.evidence.add(f"log {record.name} record", vars(record))


@contextlib.contextmanager
def every_log_at_debug(evidence: Evidence) -> Iterator[Capture]:
    root = logging.getLogger()
    handler = Capture(evidence)
    levels = {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    old_root = root.level
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_root)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _sse(*payloads: Any) -> bytes:
    return "".join(f"data: {json.dumps(p)}\n\n" for p in payloads).encode()


def _chunk(text: str) -> dict[str, Any]:
    return {"id": "c", "model": "m", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": None}]}


QUOTED = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}.",
                               "type": "invalid_request_error", "code": "invalid_api_key"}})
JSON = {"content-type": "application/json"}


def failures() -> dict[str, list[Reply]]:
    """Scripts that tempt a leak, for any vendor (the body shapes are generic)."""
    return {
        "401 quoting the key": [Reply(status=401, body=QUOTED.encode(), headers=JSON)],
        "429 quoting the key": [Reply(status=429, body=QUOTED.encode(),
                                      headers={**JSON, "retry-after": "3600"})],
        "500 then 500": [Reply(status=500, body=f"upstream: key={KEY}".encode(),
                               headers={"content-type": "text/plain"})] * 2,
        "dropped mid-body": [Reply(body=_sse(_chunk("Once ")) + b"data: {\"cho",
                                   end="abrupt")],
        "stall": [Reply(body=_sse(_chunk("Once ")), end="stall")],
    }


# Each vendor with its key header, and the error events that quote the key mid-stream.
def vendors(url: str) -> dict[str, HTTPProvider]:
    common: dict[str, Any] = {"api_key": KEY, "idle_timeout": 0.3, "retry": FAST}
    return {
        "openai": OpenAIProvider("m", base_url=url, **common),
        "azure": AzureOpenAIProvider("dep", endpoint=url, **common),
        "responses": OpenAIResponsesProvider("m", base_url=url, **common),
        "anthropic": AnthropicProvider("m", base_url=url, **common),
        "gemini": GeminiProvider("m", base_url=url, **common),
        "cohere": CohereProvider("m", base_url=url, **common),
        "ollama": OllamaProvider("m", base_url=url, **common),
        "bedrock": BedrockProvider("m", base_url=url, region="us-east-1", **common),
        # SigV4: the secret access key never leaves; the session token goes on the wire.
        "bedrock-sigv4": BedrockProvider(
            "m", base_url=url, region="us-east-1", idle_timeout=0.3, retry=FAST,
            credentials=Credentials("AKIDEXAMPLE", "never-sent-secret", KEY)),
    }


MID_STREAM: dict[str, list[bytes]] = {
    "openai": [_sse(_chunk("Once "), {"error": {"message": f"key {KEY} revoked"}}),
               _sse(_chunk("Once ")) + f"data: {{\"bad\": \"{KEY}\n\n".encode(),
               _sse(_chunk("Once "), [KEY]),
               _sse({"id": [KEY], "model": "m", "choices": []}),  # a chunk of the wrong shape
               _sse({"id": "c", "model": "m", "choices": [{"delta": {KEY: 1}, "index": KEY}]}),
               _sse({"id": "c", "model": "m",
                     "choices": [{"index": 0, "delta": {"content": [KEY]}}]})],
    "anthropic": [
        f"event: error\ndata: {json.dumps({'type': 'error', 'error': {'type': 'x', 'message': KEY}})}\n\n".encode(),  # noqa: E501
        f"event: message_start\ndata: {{\"oops\": \"{KEY}\"\n\n".encode(),
        f"event: surprise\ndata: {json.dumps({'type': 'surprise', 'k': KEY})}\n\n".encode(),
    ],
    "gemini": [_sse({"error": {"message": KEY, "status": "X"}}), _sse([KEY])],
    "cohere": [f"event: x\ndata: {json.dumps({'type': 'x', 'k': KEY})}\n\n".encode()],
    "ollama": [json.dumps({"error": KEY}).encode() + b"\n", f"{KEY}\n".encode()],
    "bedrock": [aws_exception("throttlingException", {"message": KEY}),
                aws_exception("modelStreamErrorException", {"message": KEY}),
                frame({":message-type": "event", ":event-type": "metadata"},
                      f'{{"usage": "{KEY}'.encode())],
}
MID_STREAM["bedrock-sigv4"] = MID_STREAM["bedrock"]


async def drive(provider: HTTPProvider, evidence: Evidence, where: str) -> None:
    evidence.add(f"{where}: repr(provider)", repr(provider))
    evidence.add(f"{where}: str(provider)", str(provider))
    async with provider:
        evidence.add(f"{where}: request", repr(provider._http_request(REQ)))
        try:
            with anyio.fail_after(20):
                async for chunk in provider.stream_chat(REQ):
                    evidence.add(f"{where}: chunk", repr(chunk))
        except ChronosError as exc:
            evidence.error(where, exc)
        else:
            pytest.fail(f"{where}: no error")


@pytest.mark.anyio
async def test_providers_never_show_the_key(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence = Evidence()
    with every_log_at_debug(evidence) as logs:
        errors = 0
        for case, replies in failures().items():
            for name in vendors("http://x"):
                script = replay_server.script(*replies)
                provider = vendors(script.base_url)[name]
                await drive(provider, evidence, f"{name}/{case}")
                errors += 1
                sent = script.exchanges[0].headers
                assert KEY in " ".join(sent.values()), f"{name} did not send the key"
        for name, bodies in MID_STREAM.items():
            for index, body in enumerate(bodies):
                kind = "application/x-ndjson" if name == "ollama" else "text/event-stream"
                script = replay_server.script(Reply(body=body, headers={"content-type": kind}))
                await drive(vendors(script.base_url)[name], evidence, f"{name}/mid-stream {index}")
                errors += 1
        # Keys from the environment; an unreachable server; a fallback chain of all of them.
        for variable in ENV:
            monkeypatch.setenv(variable, KEY)
        with socket_nobody_listens() as dead:
            chain = FallbackProvider(
                OpenAIProvider("m", base_url=dead, retry=FAST),
                AnthropicProvider("m", base_url=dead, retry=FAST),
                GeminiProvider("m", base_url=dead, retry=FAST),
                CohereProvider("m", base_url=dead, retry=FAST),
            )
            await drive_fallback(chain, evidence)
            errors += 1
    assert errors > 40
    assert logs.count > 0
    assert not evidence.leaks(), "\n".join(evidence.leaks())


async def drive_fallback(chain: FallbackProvider, evidence: Evidence) -> None:
    evidence.add("fallback: repr", repr(chain))
    try:
        async with chain:
            await chain.chat(REQ)
    except ChronosError as exc:
        evidence.error("fallback", exc)
    else:
        pytest.fail("the fallback chain reached a server")


@contextlib.contextmanager
def socket_nobody_listens() -> Iterator[str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


# --- a failing graph run, with a store and a broker -------------------------------------------


@contextlib.asynccontextmanager
async def sqlite_and_memory_broker(
    tmp_path: Path, evidence: Evidence
) -> AsyncIterator[tuple[CheckpointStore, BrokerProtocol, BrokerProtocol]]:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path) as store, Broker() as broker:
        yield store, broker, broker
    # The database, its WAL and shared-memory files, and the (empty) session lease files.
    for name, data in _files(tmp_path):
        evidence.add(f"file {name}", data)


def _files(directory: Path) -> list[tuple[str, bytes]]:
    return [(str(file.relative_to(directory)), file.read_bytes())
            for file in directory.rglob("*") if file.is_file()]


@contextlib.asynccontextmanager
async def postgres_and_redis(
    tmp_path: Path, evidence: Evidence
) -> AsyncIterator[tuple[CheckpointStore, BrokerProtocol, BrokerProtocol]]:
    require_redis()
    table, prefix = unique_table(), unique_prefix()
    try:
        async with PostgresStore(POSTGRES_URL, table=table) as store, \
                RedisBroker(REDIS_URL, key_prefix=prefix) as broker:
            yield store, broker, broker
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
            rows = await (await conn.execute(f"SELECT * FROM {table}")).fetchall()
            evidence.add("postgres rows", repr(rows))
            for row in rows:
                for value in row:
                    evidence.add("postgres value", value)
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            async for key in client.scan_iter(match=f"{prefix}*"):
                evidence.add(f"redis key {key!r}", key)
                kind = await client.type(key)
                if kind == b"stream":
                    evidence.add(f"redis {key!r}", await client.xrange(key))
                elif kind == b"hash":
                    evidence.add(f"redis {key!r}", await client.hgetall(key))
                elif kind == b"string":
                    evidence.add(f"redis {key!r}", await client.get(key))
        finally:
            await client.aclose()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        await delete_prefix(prefix)


@pytest.mark.anyio
@pytest.mark.parametrize("backends", [sqlite_and_memory_broker, postgres_and_redis],
                         ids=["sqlite+memory", "postgres+redis"])
async def test_a_failing_graph_run_never_records_the_key(
    replay_server: ReplayServer, tmp_path: Path, backends: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_telemetry.CAPTURE_CONTENT_ENV, "true")
    evidence = Evidence()
    script = replay_server.script(
        Reply(body=_sse(_chunk("Once "), _chunk("upon a time")) + b"data: [DONE]\n\n"),
        Reply(status=401, body=QUOTED.encode(), headers=JSON),
    )
    provider = AnthropicProvider("m", base_url=script.base_url, api_key=KEY, retry=FAST)
    openai = OpenAIProvider("m", base_url=script.base_url, api_key=KEY, retry=FAST)

    async def tell(state: dict[str, Any]) -> dict[str, Any]:
        response = await graph.stream_chat(openai, REQ)
        # A careless node: the provider's repr and its config go into the state.
        return {"story": response.content, "via": repr(openai), "more": str(provider)}

    async def fail(state: dict[str, Any]) -> dict[str, Any]:
        response = await graph.stream_chat(openai, REQ)  # the 401
        return {"never": response.content}

    g = graph.StateGraph("secret").add_node("tell", tell).add_node("fail", fail)
    compiled = g.set_entry_point("tell").add_edge("tell", "fail").set_finish_point("fail")
    with every_log_at_debug(evidence), traced() as spans:
        async with backends(tmp_path, evidence) as (store, broker, reader):
            runner = graph.Runner(compiled.compile(), store, broker=broker)
            subscription = reader.subscribe("watch", ["s"])
            events = runner.stream()
            seen: list[graph.StreamEvent] = []
            on_broker: list[Event] = []

            async def read() -> None:
                async for event in events:
                    seen.append(event)

            async def read_broker() -> None:
                async for event in subscription:
                    on_broker.append(event)
                    if event.type == "error":
                        return

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    tg.start_soon(read_broker)
                    with pytest.raises(NodeError) as info:
                        await runner.run("s", {"story": ""})
            await subscription.aclose()
            evidence.error("run", info.value)
            for event in seen:
                evidence.add(f"stream {event.type}", repr(event))
                evidence.add(f"stream {event.type} json", orjson.dumps(event_payload(event)))
            for published in on_broker:
                evidence.add(f"broker {published.type}", published.json())
                evidence.add(f"broker {published.type} repr", repr(published))
            for checkpoint in await store.history("s"):
                evidence.add("checkpoint", repr(checkpoint))
            evidence.add("get_state", repr(await runner.get_state("s")))
            evidence.add("runner", repr(runner))
        for span in spans.get_finished_spans():
            evidence.add(f"span {span.name}", span.to_json())
    assert {s.name for s in spans.get_finished_spans()} >= {"chat m", "node fail"}
    assert [e.type for e in seen][-1] == "error"
    assert on_broker
    assert on_broker[-1].type == "error"
    assert any(e.type == "token" for e in seen)
    assert "invalid_api_key" in str(info.value)  # the error is useful, just not the key
    # The run's own log lines were among what was searched: its start, and its failed end.
    run_lines = [text for where, text in evidence.items if where == "log chronos.graph"]
    assert len(run_lines) == 2
    assert "status=failed" in run_lines[-1]
    assert KEY in " ".join(script.exchanges[0].headers.values())
    await openai.aclose()
    assert not evidence.leaks(), "\n".join(evidence.leaks())


def test_a_served_failing_run_never_shows_the_key_in_metrics_or_spans(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_telemetry.CAPTURE_CONTENT_ENV, "true")
    evidence = Evidence()
    script = replay_server.script(Reply(status=401, body=QUOTED.encode(), headers=JSON))
    openai = OpenAIProvider("m", base_url=script.base_url, api_key=KEY, retry=FAST)

    async def fail(state: dict[str, Any]) -> dict[str, Any]:
        return {"story": (await graph.stream_chat(openai, REQ)).content}

    served = graph.StateGraph("secret").add_node("fail", fail).set_entry_point("fail")
    app = create_app({"secret": served.set_finish_point("fail")}, MemoryStore(), Broker())
    with every_log_at_debug(evidence), traced() as spans, TestClient(app) as client:
        answer = client.post("/runs/wait", json={"assistant_id": "secret", "input": {}})
        evidence.add("answer", answer.text)
        metrics = client.get("/metrics")
        evidence.add("metrics", metrics.text)
        for span in spans.get_finished_spans():
            evidence.add(f"span {span.name}", span.to_json())
    assert 'chronos_runs_total{status="error"} 1.0' in metrics.text
    assert any(s.status.status_code is StatusCode.ERROR for s in spans.get_finished_spans())
    assert KEY in " ".join(script.exchanges[0].headers.values())
    assert not evidence.leaks(), "\n".join(evidence.leaks())

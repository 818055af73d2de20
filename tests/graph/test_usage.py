"""What each model call used reaches the run: the last token, per-node and per-run totals."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos import graph, model
from chronos.errors import NodeError
from chronos.model import RetryPolicy
from chronos.model.openai import OpenAIProvider
from chronos.store import CheckpointStore, MemoryStore, PostgresStore
from tests.demo.conftest import openai_stream as saying
from tests.model.conftest import AWS_ENVIRONMENT
from tests.model.recordings import PROVIDERS, Recording, load_all, recording_id
from tests.model.replay import ReplayServer, Reply
from tests.store.backends import POSTGRES_URL, unique_table

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio

REQUEST = model.ChatRequest(messages=[model.Message(role="user", content="Hello")])
WITH_USAGE = [r for r in load_all()
              if r.status < 400 and r.expected.get("usage") and r.api in PROVIDERS]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


def _reply(recording: Recording) -> Reply:
    return Reply(status=recording.status, body=recording.body,
                 headers={"content-type": recording.content_type},
                 seed=zlib.crc32(recording.body))


def _replaying(recording: Recording, replay_server: ReplayServer) -> Any:
    """The recording's vendor's provider, answered by the recording (once, no retry)."""
    provider = PROVIDERS[recording.api](recording, replay_server.script(_reply(recording)).base_url)
    provider.retry = RetryPolicy(max_retries=0)
    return provider


def one_node_graph(node: graph.NodeFunction) -> graph.CompiledGraph:
    return (graph.StateGraph("g").add_node("chat", node).set_entry_point("chat")
            .set_finish_point("chat").compile())


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("recording", WITH_USAGE, ids=recording_id)
async def test_the_last_token_carries_the_usage_each_vendor_recorded(
    recording: Recording, replay_server: ReplayServer
) -> None:
    provider = _replaying(recording, replay_server)

    async def chat(state: dict[str, Any]) -> dict[str, Any]:
        await graph.stream_chat(provider, REQUEST)
        return {}

    runner = graph.Runner(one_node_graph(chat))
    tokens = runner.stream("messages")
    async with provider:
        await runner.run("s", {})
    deltas = [e.data async for e in tokens if e.type == "token"]

    usage = deltas[-1].usage
    assert usage is not None
    assert dict(usage.raw) == recording.expected["usage"]
    assert all(d.usage is None for d in deltas[:-1])
    assert usage.input_tokens is not None or usage.output_tokens is not None
    for name, path in PARTS.get(recording.api, {}).items():
        assert getattr(usage, name) == _at(recording.expected["usage"], path), name


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("recording", WITH_USAGE, ids=recording_id)
async def test_a_whole_response_call_counts_the_usage_each_vendor_recorded(
    recording: Recording, replay_server: ReplayServer
) -> None:
    provider = _replaying(recording, replay_server)
    responses: list[model.ChatResponse] = []

    async def chat(state: dict[str, Any]) -> dict[str, Any]:
        responses.append(await provider.chat(REQUEST))  # not streamed into the run
        return {}

    async with provider:
        result = await graph.Runner(one_node_graph(chat), prices=None).run("s", {})

    [response] = responses
    assert response.usage is not None
    assert dict(response.usage.raw) == recording.expected["usage"]
    assert counts(result.usage) == counts(response.usage)
    assert {n: counts(u) for n, u in result.usage_by_node.items()} == {
        "chat": counts(response.usage)}


# Where each vendor reports the parts of its counts that are billed apart.
PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "chat.completions": {"reasoning_tokens": ("completion_tokens_details", "reasoning_tokens")},
    "responses": {"reasoning_tokens": ("output_tokens_details", "reasoning_tokens"),
                  "cached_tokens": ("input_tokens_details", "cached_tokens"),
                  "cache_write_tokens": ("input_tokens_details", "cache_write_tokens")},
    "messages": {"cached_tokens": ("cache_read_input_tokens",),
                 "cache_write_tokens": ("cache_creation_input_tokens",)},
    "converse-stream": {"cached_tokens": ("cacheReadInputTokens",),
                        "cache_write_tokens": ("cacheWriteInputTokens",)},
    "streamGenerateContent": {"reasoning_tokens": ("thoughtsTokenCount",)},
    "v2/chat": {"cached_tokens": ("cached_tokens",),
                "reasoning_tokens": ("tokens", "reasoning_tokens")},
}


def _at(raw: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        raw = raw.get(key) if isinstance(raw, dict) else None
    return raw


# --- totals per node and per run --------------------------------------------------------------

def openai_stream(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> bytes:
    """An OpenAI Chat Completions stream saying "ok", its usage on the closing chunk."""
    return saying(["ok"], {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion,
                           "prompt_tokens_details": {"cached_tokens": cached},
                           "completion_tokens_details": {"reasoning_tokens": reasoning}})


CALL = model.Usage(input_tokens=100, output_tokens=20, total_tokens=120, cached_tokens=40,
                   reasoning_tokens=5)


def replies(count: int) -> list[Reply]:
    return [Reply(body=openai_stream(100, 20, cached=40, reasoning=5)) for _ in range(count)]


def counts(usage: model.Usage) -> model.Usage:
    """The counts alone (a single call's usage also keeps the vendor's raw object)."""
    return model.Usage.from_counts(usage.counts())


def times(n: int) -> model.Usage:
    total = CALL
    for _ in range(n - 1):
        total = total + CALL
    return total


@pytest.fixture
async def provider(replay_server: ReplayServer) -> AsyncIterator[OpenAIProvider]:
    script = replay_server.script(*replies(8))
    async with OpenAIProvider("gpt-4o", base_url=script.base_url + "/v1", api_key="k") as p:
        yield p


def caller(provider: OpenAIProvider, calls: int = 1) -> graph.NodeFunction:
    async def node(state: dict[str, Any]) -> dict[str, Any]:
        for _ in range(calls):
            await graph.stream_chat(provider, REQUEST)
        return {}
    return node


async def test_calls_add_up_per_node_and_per_run(provider: OpenAIProvider) -> None:
    def sync_caller(state: dict[str, Any]) -> dict[str, Any]:
        graph.stream_chat_sync(provider, REQUEST)
        return {}

    compiled = (
        graph.StateGraph("g").add_node("plan", caller(provider, calls=2))
        .add_node("write", sync_caller).add_node("check", lambda s: {})
        .set_entry_point("plan").add_edge("plan", "write").add_edge("write", "check")
        .set_finish_point("check").compile()
    )
    result = await graph.Runner(compiled, prices=None).run("s", {})

    assert result.usage == times(3)
    assert result.usage.reasoning_tokens == 15
    assert result.usage.cached_tokens == 120
    assert {n: counts(u) for n, u in result.usage_by_node.items()} == {
        "plan": times(2), "write": CALL}
    assert result.cost is None
    assert result.cost_by_node == {"plan": None, "write": None}


async def test_whole_response_calls_add_up_with_streamed_ones(provider: OpenAIProvider) -> None:
    async def both(state: dict[str, Any]) -> dict[str, Any]:
        await provider.chat(REQUEST)
        await graph.stream_chat(provider, REQUEST)
        return {}

    def sync_chat(state: dict[str, Any]) -> dict[str, Any]:
        provider.chat_sync(REQUEST)
        return {}

    await provider.chat(REQUEST)  # outside any run: nobody's
    compiled = (graph.StateGraph("g").add_node("both", both).add_node("write", sync_chat)
                .set_entry_point("both").add_edge("both", "write").set_finish_point("write")
                .compile())
    result = await graph.Runner(compiled, prices=None).run("s", {})

    assert {n: counts(u) for n, u in result.usage_by_node.items()} == {
        "both": times(2), "write": CALL}
    assert result.usage == times(3)


async def test_a_run_without_model_calls_has_no_usage() -> None:
    result = await graph.Runner(one_node_graph(lambda s: {})).run("s", {})
    assert result.usage == model.Usage()
    assert result.usage_by_node == {}
    assert result.cost is None


async def test_parallel_branches_each_count_and_the_run_sums_them(
    provider: OpenAIProvider,
) -> None:
    compiled = (
        graph.StateGraph("g").add_node("start", lambda s: {})
        .add_node("a", caller(provider)).add_node("b", caller(provider, calls=2))
        .add_node("c", caller(provider)).set_entry_point("start")
        .add_edge("start", ["a", "b", "c"]).add_edge(["a", "b", "c"], graph.END).compile()
    )
    result = await graph.Runner(compiled, MemoryStore(), prices=None).run("s", {})
    assert {n: counts(u) for n, u in result.usage_by_node.items()} == {
        "a": CALL, "b": times(2), "c": CALL}
    assert result.usage == times(4)


async def test_a_subgraphs_calls_are_counted_under_its_path(provider: OpenAIProvider) -> None:
    inner = (graph.StateGraph("inner").add_node("draft", caller(provider))
             .set_entry_point("draft").set_finish_point("draft").compile())
    compiled = (
        graph.StateGraph("outer").add_node("plan", caller(provider))
        .add_subgraph("writer", inner).set_entry_point("plan").add_edge("plan", "writer")
        .set_finish_point("writer").compile()
    )
    result = await graph.Runner(compiled, MemoryStore(), prices=None).run("s", {})
    assert set(result.usage_by_node) == {"plan", "writer/draft"}
    assert result.usage == times(2)


async def test_a_retried_attempts_calls_count_too(provider: OpenAIProvider) -> None:
    attempts = []

    async def flaky(state: dict[str, Any]) -> dict[str, Any]:
        await graph.stream_chat(provider, REQUEST)
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("the tool behind the model failed")
        return {}

    compiled = (
        graph.StateGraph("g")
        .add_node("flaky", flaky, retry=graph.RetryPolicy(initial_interval=0, jitter=False))
        .set_entry_point("flaky").set_finish_point("flaky").compile()
    )
    result = await graph.Runner(compiled, prices=None).run("s", {})
    assert counts(result.usage_by_node["flaky"]) == times(3)


async def test_each_checkpoint_records_the_totals_so_far(
    provider: OpenAIProvider, store: CheckpointStore
) -> None:
    compiled = (
        graph.StateGraph("g").add_node("a", caller(provider)).add_node("b", caller(provider))
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    runner = graph.Runner(compiled, store, prices=model.Prices.only(
        {"gpt-4o": model.Price(input=2.0, output=10.0)}))
    result = await runner.run("s", {})
    history = await store.history("s")

    recorded = [c.metadata.get("usage", {}) for c in history]
    assert recorded[0] == {}  # written when the run started, before any call
    assert set(recorded[1]) == {"a"}
    assert set(recorded[-1]) == {"a", "b"}
    assert recorded[-1]["b"]["input_tokens"] == 100
    assert recorded[-1]["b"]["cost"] == pytest.approx(
        (100 * 2.0 + 20 * 10.0) / 1e6)
    # Read back from the store, the session's state has the run's totals.
    state = await graph.Runner(compiled, store).get_state("s")
    assert state is not None
    assert state.usage == result.usage
    assert state.cost == pytest.approx(result.cost)
    assert dict(state.cost_by_node) == pytest.approx(dict(result.cost_by_node))
    [info] = await store.sessions()
    assert info.metadata == history[-1].metadata


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_totals_survive_a_resume_in_another_process(
    kind: str, tmp_path: Path, replay_server: ReplayServer
) -> None:
    script = replay_server.script(*replies(2))
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()

    def worker(command: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.graph.usage_worker", command, kind, location,
             script.base_url + "/v1"],
            cwd=ROOT, capture_output=True, timeout=120, check=True)
        result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
        return result

    try:
        paused = worker("run")
        done = worker("resume")
    finally:
        if kind == "postgres":
            asyncio.run(_drop(location))
    assert paused["status"] == "paused"
    assert set(paused["by_node"]) == {"ask"}
    assert done["status"] == "completed"
    assert done["by_node"] == {"ask": CALL.counts(), "answer": CALL.counts()}
    assert done["usage"] == times(2).counts()
    # gpt-4o is priced by genai-prices: the resumed run's cost includes the first run's.
    assert paused["cost"] is not None
    assert paused["cost"] > 0
    assert done["cost"] == pytest.approx(2 * paused["cost"])


async def _drop(table: str) -> None:
    async with PostgresStore(POSTGRES_URL, table=table) as cleaner:
        await cleaner.drop_table()


# --- cost -------------------------------------------------------------------------------------

async def test_a_known_model_is_priced_by_genai_prices(provider: OpenAIProvider) -> None:
    result = await graph.Runner(one_node_graph(caller(provider))).run("s", {})
    expected = model.genai_prices("openai", "gpt-4o", CALL)
    assert expected is not None
    assert expected > 0
    assert result.cost == pytest.approx(expected)
    assert result.cost_by_node == {"chat": pytest.approx(expected)}
    # 40 of the 100 input tokens were cached, which costs less than fresh input.
    fresh = model.genai_prices("openai", "gpt-4o", model.Usage(input_tokens=100,
                                                                output_tokens=20))
    assert fresh is not None
    assert expected < fresh


async def test_an_unknown_model_has_no_cost_and_makes_the_total_unknown(
    replay_server: ReplayServer, provider: OpenAIProvider
) -> None:
    script = replay_server.script(*replies(1))
    async with OpenAIProvider("my-own-finetune", base_url=script.base_url + "/v1",
                              api_key="k") as unknown:
        compiled = (
            graph.StateGraph("g").add_node("known", caller(provider))
            .add_node("unknown", caller(unknown)).set_entry_point("known")
            .add_edge("known", "unknown").set_finish_point("unknown").compile()
        )
        result = await graph.Runner(compiled).run("s", {})
    assert result.cost_by_node["known"] is not None
    assert result.cost_by_node["unknown"] is None
    assert result.cost is None  # never a partial sum
    assert model.genai_prices("ollama", "llama3", CALL) is None


async def test_a_users_prices_come_first_and_genai_prices_fills_in(
    provider: OpenAIProvider,
) -> None:
    mine = model.Prices({"openai/gpt-4o": model.Price(input=1.0, output=2.0, cached_input=0.5)})
    result = await graph.Runner(one_node_graph(caller(provider)), prices=mine).run("s", {})
    assert result.cost == pytest.approx((60 * 1.0 + 40 * 0.5 + 20 * 2.0) / 1e6)
    assert mine("anthropic", "claude-sonnet-4-5", CALL) == model.genai_prices(
        "anthropic", "claude-sonnet-4-5", CALL)
    assert model.Prices.only({})("openai", "gpt-4o", CALL) is None


async def test_any_callable_prices_and_a_bad_table_is_refused(provider: OpenAIProvider) -> None:
    seen = []

    def per_call(provider_name: str, model_name: str, usage: model.Usage) -> float:
        seen.append((provider_name, model_name, usage.output_tokens))
        return 0.25

    result = await graph.Runner(one_node_graph(caller(provider)), prices=per_call).run("s", {})
    assert result.cost == 0.25
    assert seen == [("openai", "gpt-4o", 20)]
    with pytest.raises(TypeError, match=r"model\.Price"):
        model.Prices({"gpt-4o": 2.5})  # type: ignore[dict-item]


# --- logs -------------------------------------------------------------------------------------

async def test_one_info_line_when_a_run_starts_and_one_when_it_ends(
    provider: OpenAIProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chronos")
    result = await graph.Runner(one_node_graph(caller(provider)), prices=None).run("s-1", {})

    lines = [r for r in caplog.records if r.name == "chronos.graph"]
    assert [r.getMessage().split(" session=")[0] for r in lines] == ["run start", "run end"]
    end = lines[1]
    assert end.levelno == logging.INFO
    fields = end.chronos  # type: ignore[attr-defined]
    assert fields["session"] == "s-1"
    assert fields["run"] == result.run_id
    assert fields["status"] == "completed"
    assert fields["duration"] >= 0
    assert fields["input_tokens"] == 100
    assert fields["output_tokens"] == 20
    assert "input_tokens=100" in end.getMessage()


async def test_a_failed_run_logs_its_error_type_not_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(state: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("password=hunter2")

    caplog.set_level(logging.INFO, logger="chronos")
    with pytest.raises(NodeError):
        await graph.Runner(one_node_graph(boom)).run("s", {})
    [end] = [r for r in caplog.records if r.getMessage().startswith("run end")]
    assert end.chronos["status"] == "failed"  # type: ignore[attr-defined]
    assert end.chronos["error"] == "NodeError"  # type: ignore[attr-defined]
    assert "hunter2" not in end.getMessage()

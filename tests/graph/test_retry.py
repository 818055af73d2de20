"""Per-node `RetryPolicy` and `timeout`: each failed attempt streamed, one checkpoint per step."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from chronos import graph
from chronos.errors import NodeError, NodeTimeoutError
from chronos.store import CheckpointStore

pytestmark = pytest.mark.anyio

NO_WAIT = {"initial_interval": 0.0, "jitter": False}


async def collect(stream: graph.EventStream) -> list[graph.StreamEvent]:
    return [e async for e in stream]


def flaky_graph(failures: int, calls: Counter[str], **policy: Any) -> graph.CompiledGraph:
    async def flaky(state: dict[str, Any]) -> dict[str, Any]:
        calls["flaky"] += 1
        if calls["flaky"] <= failures:
            raise ConnectionError(f"attempt {calls['flaky']} lost")
        return {"ok": True}

    return (
        graph.StateGraph("flaky")
        .add_node("flaky", flaky, retry=graph.RetryPolicy(**{**NO_WAIT, **policy}))
        .set_entry_point("flaky").set_finish_point("flaky").compile()
    )


async def test_each_failed_attempt_is_an_event_and_the_step_checkpoints_once(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(flaky_graph(2, calls, max_attempts=3), store)
    events = runner.stream("tasks")
    seen, result = await asyncio.gather(collect(events), runner.run("r", {}))
    assert result.status == "completed"
    assert result.state["ok"] is True
    assert [e.type for e in seen] == ["node_start", "retry", "retry", "node_end", "completed"]
    assert [e.data["attempt"] for e in seen if e.type == "retry"] == [1, 2]
    assert "attempt 1 lost" in seen[1].error
    statuses = [c.status for c in await store.history("r")]
    assert statuses == ["running", "completed"]  # the start, then the one successful step


async def test_the_last_failure_fails_the_run(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(flaky_graph(5, calls, max_attempts=2), store)
    with pytest.raises(NodeError) as caught:
        await runner.run("r", {})
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert calls["flaky"] == 2
    latest = await store.latest("r")
    assert latest is not None
    assert latest.status == "failed"


async def test_programming_errors_are_not_retried_by_default() -> None:
    calls: Counter[str] = Counter()

    def broken(state: dict[str, Any]) -> dict[str, Any]:
        calls["broken"] += 1
        raise KeyError("missing")

    g = (graph.StateGraph("b").add_node("b", broken, retry=graph.RetryPolicy(**NO_WAIT))
         .set_entry_point("b").set_finish_point("b").compile())
    with pytest.raises(NodeError):
        await graph.Runner(g).run("b", {})
    assert calls["broken"] == 1


async def test_retry_on_picks_the_failures_to_retry() -> None:
    calls: Counter[str] = Counter()

    def picky(state: dict[str, Any]) -> dict[str, Any]:
        calls["picky"] += 1
        if calls["picky"] == 1:
            raise ValueError("once")
        return {"done": True}

    policy = graph.RetryPolicy(retry_on=ValueError, **NO_WAIT)
    g = (graph.StateGraph("p").add_node("p", picky, retry=policy)
         .set_entry_point("p").set_finish_point("p").compile())
    assert (await graph.Runner(g).run("p", {})).state["done"] is True


async def test_a_timeout_cancels_the_attempt_and_may_be_retried() -> None:
    attempts: list[float] = []

    async def slow_then_fast(state: dict[str, Any]) -> dict[str, Any]:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            await asyncio.sleep(30)
        return {"done": len(attempts)}

    g = (graph.StateGraph("t")
         .add_node("t", slow_then_fast, timeout=0.05, retry=graph.RetryPolicy(**NO_WAIT))
         .set_entry_point("t").set_finish_point("t").compile())
    runner = graph.Runner(g)
    events = runner.stream("tasks")
    seen, result = await asyncio.gather(collect(events), runner.run("t", {}))
    assert result.state["done"] == 2
    [retry] = [e for e in seen if e.type == "retry"]
    assert "NodeTimeoutError" in retry.error


async def test_a_timeout_without_retry_fails_with_a_typed_error() -> None:
    def blocking(state: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.3)
        return {}

    g = (graph.StateGraph("t").add_node("t", blocking, timeout=0.05)
         .set_entry_point("t").set_finish_point("t").compile())
    with pytest.raises(NodeError) as caught:
        await graph.Runner(g).run("t", {})
    cause = caught.value.__cause__
    assert isinstance(cause, NodeTimeoutError)
    assert isinstance(cause, TimeoutError)
    assert (cause.node_id, cause.timeout) == ("t", 0.05)


def test_the_policy_backs_off_up_to_its_cap() -> None:
    policy = graph.RetryPolicy(initial_interval=1.0, backoff=2.0, max_interval=5.0, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = graph.RetryPolicy(initial_interval=1.0, jitter=True)
    assert 1.0 <= jittered.delay(1) <= 2.0
    with pytest.raises(ValueError, match="max_attempts"):
        graph.RetryPolicy(max_attempts=0)

"""Work runs once: one executor per session on every store, and a completed run stays closed.

Across processes this is tested with real subprocesses in `test_crash_recovery.py` and
`tests/cli/test_sessions.py`; here, runs racing in one process, and runners sharing a store.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from chronos import graph
from chronos.errors import RunConflictError, SessionCompletedError
from chronos.store import Checkpoint, CheckpointStore

pytestmark = pytest.mark.anyio


def chain(calls: Counter[str]) -> graph.CompiledGraph:
    """a -> b -> c, each counting its calls and yielding to the loop once."""

    def node(name: str) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            await asyncio.sleep(0)
            return {"log": [name]}

        return run

    return (
        graph.StateGraph("chain", reducers={"log": graph.append})
        .add_node("a", node("a")).add_node("b", node("b")).add_node("c", node("c"))
        .set_entry_point("a").add_edge("a", "b").add_edge("b", "c").set_finish_point("c")
        .compile()
    )


def assert_linear(history: list[Checkpoint]) -> None:
    """One line of history: every checkpoint follows the one written before it."""
    assert [c.parent_id for c in history[1:]] == [c.id for c in history[:-1]]


async def test_a_resume_racing_the_end_of_a_run_never_reruns_a_node(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(chain(calls), store)
    outcomes: Counter[str] = Counter()
    rounds = 60
    for i in range(rounds):
        session = f"race-{i}"
        run = asyncio.ensure_future(runner.run(session, {"log": []}))
        for _ in range(i % 12):  # the resume arrives at a different point of the run each time
            await asyncio.sleep(0)
        results = await asyncio.gather(run, runner.resume(session), return_exceptions=True)
        ran, resumed = results
        assert not isinstance(ran, BaseException), ran
        assert ran.state["log"] == ["a", "b", "c"]
        if isinstance(resumed, RunConflictError):
            outcomes["refused"] += 1
        else:
            assert not isinstance(resumed, BaseException), resumed
            assert (resumed.status, resumed.state["log"]) == ("completed", ["a", "b", "c"])
            outcomes["after the end"] += 1
        assert_linear(await store.history(session))
    assert calls == Counter({"a": rounds, "b": rounds, "c": rounds}), outcomes
    assert outcomes["refused"] > 0  # the race was run, not only its end


async def test_runners_sharing_a_store_never_run_one_session_twice(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    compiled = chain(calls)
    first, second = graph.Runner(compiled, store), graph.Runner(compiled, store)
    results = await asyncio.gather(first.run("s", {"log": []}), second.run("s", {"log": []}),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["RunConflictError", "RunState"]
    assert calls == Counter({"a": 1, "b": 1, "c": 1})
    # Given back when the run ended: the other runner may continue the session now.
    assert (await second.resume("s")).state["log"] == ["a", "b", "c"]


async def test_a_claim_is_given_back_when_the_run_fails_early(store: CheckpointStore) -> None:
    runner = graph.Runner(chain(Counter()), store)
    with pytest.raises(Exception, match="no session"):
        await runner.resume("missing")
    await runner.run("missing", {"log": []})  # not left claimed by the failed resume


async def test_updating_a_completed_session_is_refused_and_changes_nothing(
    store: CheckpointStore,
) -> None:
    calls: Counter[str] = Counter()
    runner = graph.Runner(chain(calls), store)
    done = await runner.run("s", {"log": []})
    before = await store.history("s")
    with pytest.raises(SessionCompletedError) as caught:
        await runner.resume("s", {"log": ["late"]})
    assert (caught.value.session_id, caught.value.checkpoint_id) == ("s", done.checkpoint_id)
    assert "fork" in str(caught.value)
    with pytest.raises(SessionCompletedError):
        await runner.resume_from_checkpoint(before[-1].id, {"log": ["late"]})
    assert await store.history("s") == before
    assert (await runner.resume("s")).state == done.state  # without an update: the final state
    assert await store.history("s") == before

    forked = await runner.fork_from(before[-1].id, {"log": ["late"]}, session_id="s2")
    assert forked.state["log"] == ["a", "b", "c", "late"]
    assert await store.history("s") == before
    assert calls == Counter({"a": 1, "b": 1, "c": 1})

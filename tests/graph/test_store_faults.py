"""A checkpoint store that fails on write, in the middle of a run.

Two kinds of failure, on every store (memory, SQLite, the real Postgres):

- injected: a wrapper around the real store whose `put` raises from the Nth call on, either
  once (a transient fault) or until healed (a full disk), with a `StoreError` or a raw
  `OSError` (a third-party store that does not translate its errors);
- real: the database itself refuses the INSERT (a trigger that raises, installed from another
  connection, as a full disk or a revoked permission would).

What must hold: the run fails with the store's error (never a hang, never "completed"), its
status is "failed", every subscriber's stream ends with a terminal `error` event (and the
broker gets it too), the last good checkpoint is the session's latest or is followed only by
a `failed` checkpoint of the same state, and `resume` from it completes the run with each
finished node's update applied exactly once.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from chronos import graph
from chronos.errors import StoreError
from chronos.store import (
    Checkpoint,
    CheckpointStore,
    PostgresStore,
    SessionInfo,
    SQLiteStore,
)
from chronos.stream import Broker, Event
from tests.store.backends import POSTGRES_URL, unique_table

pytestmark = pytest.mark.anyio


class FailingStore:
    """A real store whose `put` raises from call number `fail_at` (1-based) on.

    `once`: only that call fails (a transient fault); else every later one until `heal()`.
    """

    def __init__(
        self,
        inner: CheckpointStore,
        fail_at: int,
        *,
        once: bool,
        error: Callable[[], Exception],
    ) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.once = once
        self.error = error
        self.puts = 0
        self.failed = 0
        self.healed = False

    def heal(self) -> None:
        self.healed = True

    async def put(self, checkpoint: Checkpoint) -> None:
        self.puts += 1
        failing = self.puts == self.fail_at if self.once else self.puts >= self.fail_at
        if failing and not self.healed:
            self.failed += 1
            raise self.error()
        await self.inner.put(checkpoint)

    async def get(self, checkpoint_id: str) -> Checkpoint:
        return await self.inner.get(checkpoint_id)

    async def latest(self, session_id: str) -> Checkpoint | None:
        return await self.inner.latest(session_id)

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        return await self.inner.history(session_id, limit=limit)

    async def sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        return await self.inner.sessions(limit=limit)

    async def aclose(self) -> None:
        await self.inner.aclose()


def chain(calls: Counter[str], names: str = "abcd") -> graph.CompiledGraph:
    """a -> b -> c -> d, each appending its name to `trail` and counting its runs."""

    def node(name: str) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            return {"trail": [name]}

        return run

    g = graph.StateGraph("chain", reducers={"trail": graph.append})
    for name in names:
        g.add_node(name, node(name))
    for first, second in itertools.pairwise(names):
        g.add_edge(first, second)
    return g.set_entry_point(names[0]).set_finish_point(names[-1]).compile()


async def run_observed(
    runner: graph.Runner, broker: Broker, session: str, state: dict[str, Any]
) -> tuple[BaseException | None, dict[str, list[graph.StreamEvent]], list[Event]]:
    """Run with three subscribers (three modes) and a broker subscriber; all must end."""
    streams = {mode: runner.stream(mode) for mode in ("debug", "updates", "custom")}
    seen: dict[str, list[graph.StreamEvent]] = {mode: [] for mode in streams}
    on_broker: list[Event] = []
    subscription = broker.subscribe(f"watch-{session}", [session])
    outcome: list[BaseException | None] = []

    async def read(mode: str) -> None:
        async for event in streams[mode]:
            seen[mode].append(event)

    async def read_broker() -> None:
        async for event in subscription:
            on_broker.append(event)
            if event.type in ("error", "completed"):
                break

    async def run() -> None:
        try:
            await runner.run(session, state)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for mode in streams:
                tg.start_soon(read, mode)
            tg.start_soon(read_broker)
            tg.start_soon(run)
    await subscription.aclose()
    return outcome[0], seen, on_broker


def assert_failed_cleanly(
    error: BaseException | None,
    seen: dict[str, list[graph.StreamEvent]],
    on_broker: list[Event],
    expected: type[BaseException],
) -> None:
    assert isinstance(error, expected), f"the run ended with {error!r}"
    for mode, events in seen.items():
        assert events, f"the {mode} stream got nothing"
        assert events[-1].type == "error", f"the {mode} stream did not end with an error event"
        assert "injected" in events[-1].error
        assert [e.type for e in events].count("error") == 1
    assert on_broker[-1].type == "error"
    assert "completed" not in [e.type for e in on_broker]


@pytest.mark.parametrize("error", [
    pytest.param(lambda: StoreError("disk full (injected)"), id="StoreError"),
    pytest.param(lambda: OSError(28, "No space left on device (injected)"), id="OSError"),
])
@pytest.mark.parametrize("once", [True, False], ids=["transient", "until-healed"])
async def test_a_put_failing_mid_run_fails_it_cleanly_and_resume_completes(
    store: CheckpointStore, once: bool, error: Callable[[], Exception]
) -> None:
    calls: Counter[str] = Counter()
    # Puts: 1 = the run's start, 2 = after a, 3 = after b (fails), ...
    failing = FailingStore(store, 3, once=once, error=error)
    broker = Broker()
    runner = graph.Runner(chain(calls), failing, broker=broker)
    exc, seen, on_broker = await run_observed(runner, broker, "s", {"trail": []})
    assert_failed_cleanly(exc, seen, on_broker, type(error()))

    state = await runner.get_state("s")
    assert state is not None
    assert state.status == "failed"
    history = await store.history("s")
    good = [c for c in history if c.status != "failed"]
    assert [c.ran for c in good] == [(), ("a",)]  # nothing half-written, nothing after
    assert good[-1].state["trail"] == ["a"]
    assert good[-1].next == ("b",)
    latest = await store.latest("s")
    assert latest is not None
    if once:  # the failure itself was recorded: same state, same step to retry
        assert latest.status == "failed"
        assert "injected" in latest.error
        assert latest.state == good[-1].state
        assert latest.next == ("b",)
    else:  # nothing more could be written: the last good checkpoint is the latest
        assert latest.id == good[-1].id

    failing.heal()
    result = await runner.resume("s")
    assert result.status == "completed"
    assert result.state["trail"] == ["a", "b", "c", "d"]
    assert calls == Counter(a=1, b=2, c=1, d=1)  # only the step in flight ran again
    final = await store.latest("s")
    assert final is not None
    assert final.status == "completed"
    await broker.aclose()


async def test_a_branch_checkpoint_failing_in_a_parallel_step(store: CheckpointStore) -> None:
    calls: Counter[str] = Counter()
    fast_done = anyio.Event()

    def node(name: str) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            if name == "slow" and calls[name] == 1:
                await fast_done.wait()
                await anyio.sleep(10)  # cancelled when the fast branch's checkpoint fails
            if name == "fast":
                fast_done.set()
            return {"trail": [name]}

        return run

    g = graph.StateGraph("fan", reducers={"trail": graph.append})
    for name in ("start", "fast", "slow", "join"):
        g.add_node(name, node(name))
    g.add_edge("start", ["fast", "slow"])
    g.add_edge("fast", "join").add_edge("slow", "join")
    compiled = g.set_entry_point("start").set_finish_point("join").compile()
    # Puts: 1 = start of the run, 2 = after `start`, 3 = `fast` finished (fails, until healed).
    failing = FailingStore(store, 3, once=False, error=lambda: StoreError("injected"))
    broker = Broker()
    runner = graph.Runner(compiled, failing, broker=broker)
    exc, seen, on_broker = await run_observed(runner, broker, "p", {"trail": []})
    assert_failed_cleanly(exc, seen, on_broker, StoreError)
    latest = await store.latest("p")
    assert latest is not None
    assert latest.ran == ("start",)
    assert not latest.pending

    failing.heal()
    with anyio.fail_after(30):
        result = await runner.resume("p")
    assert result.status == "completed"
    assert sorted(result.state["trail"]) == ["fast", "join", "slow", "start"]
    assert result.state["trail"][0] == "start"
    assert result.state["trail"][-1] == "join"
    await broker.aclose()


# --- the database itself refuses the write ----------------------------------------------------


@asynccontextmanager
async def sqlite_refusing(tmp_path: Path) -> AsyncIterator[tuple[CheckpointStore, Any]]:
    path = tmp_path / "runs.db"
    async with SQLiteStore(path, table="checkpoints") as sqlite:
        await sqlite.latest("-")  # creates the file and the table

        def refuse_from_step(step: int | None) -> None:
            # Another connection, as another process (or the disk) would.
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("DROP TRIGGER IF EXISTS refuse")
                if step is not None:
                    conn.execute(
                        "CREATE TRIGGER refuse BEFORE INSERT ON checkpoints "
                        f"WHEN NEW.step >= {step} "
                        "BEGIN SELECT RAISE(ABORT, 'disk full (injected by a trigger)'); END"
                    )
            finally:
                conn.close()

        yield sqlite, refuse_from_step


@asynccontextmanager
async def postgres_refusing(tmp_path: Path) -> AsyncIterator[tuple[CheckpointStore, Any]]:
    table = unique_table()
    function = f"refuse_{uuid.uuid4().hex[:12]}"
    postgres = PostgresStore(POSTGRES_URL, table=table)
    await postgres.latest("-")  # creates the table

    def refuse_from_step(step: int | None) -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TRIGGER IF EXISTS refuse ON {table}")
            if step is not None:
                conn.execute(
                    f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.step >= {step} THEN "
                    "RAISE EXCEPTION 'disk full (injected by a trigger)'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
                conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION {function}()")

    try:
        yield postgres, refuse_from_step
    finally:
        await postgres.aclose()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"DROP FUNCTION IF EXISTS {function}()")


@pytest.mark.parametrize("backend", [sqlite_refusing, postgres_refusing],
                         ids=["sqlite", "postgres"])
async def test_the_database_refusing_inserts_mid_run(tmp_path: Path, backend: Any) -> None:
    calls: Counter[str] = Counter()
    async with backend(tmp_path) as (store, refuse_from_step):
        refuse_from_step(2)  # steps 0 (start) and 1 (after a) are written, then refused
        broker = Broker()
        runner = graph.Runner(chain(calls), store, broker=broker)
        exc, seen, on_broker = await run_observed(runner, broker, "r", {"trail": []})
        assert_failed_cleanly(exc, seen, on_broker, StoreError)
        assert "disk full" in str(exc)
        history = await store.history("r")
        assert [(c.step, c.ran, c.status) for c in history] == [(0, (), "running"),
                                                                 (1, ("a",), "running")]
        refuse_from_step(None)
        result = await runner.resume("r")
        assert result.status == "completed"
        assert result.state["trail"] == ["a", "b", "c", "d"]
        assert calls == Counter(a=1, b=2, c=1, d=1)
        await broker.aclose()

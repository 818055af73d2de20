"""Durability modes, and SIGKILL in the middle of a run, in another process, on disk stores."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos import graph
from chronos.errors import CheckpointNotFound, NodeError
from chronos.store import CheckpointStore, PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL, unique_table

ROOT = Path(__file__).resolve().parents[2]
DONE = {"log": ["n0", "n1", "n2", "n3", "n4"]}


def worker(command: str, kind: str, location: str, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.graph.durability_worker", command, kind, location,
         str(workdir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def finish(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out)
    return result


def kill_when_called(victim: subprocess.Popen[bytes], calls: Path, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in (calls.read_text().splitlines() if calls.exists() else []):
        assert victim.poll() is None, victim.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"the worker never got to {line!r}"
        time.sleep(0.01)
    time.sleep(0.2)  # let an "async" write of the previous step land, as it would in life
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL


def open_store(kind: str, location: str) -> CheckpointStore:
    if kind == "sqlite":
        return SQLiteStore(location)
    return PostgresStore(POSTGRES_URL, table=location)


def history(kind: str, location: str) -> list[tuple[str, tuple[str, ...], str | None, str]]:
    async def go() -> list[tuple[str, tuple[str, ...], str | None, str]]:
        async with open_store(kind, location) as store:
            return [(c.status, c.ran, c.parent_id, c.id) for c in await store.history("durable")]

    return asyncio.run(go())


def drop(kind: str, location: str) -> None:
    if kind == "postgres":
        async def go() -> None:
            async with PostgresStore(POSTGRES_URL, table=location) as store:
                await store.drop_table()

        asyncio.run(go())


@pytest.fixture(params=["sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind = request.param
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    yield kind, location
    drop(kind, location)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sigkill_mid_run_reruns_at_most_the_steps_in_flight(
    mode: str, place: tuple[str, str], tmp_path: Path
) -> None:
    kind, location = place
    (tmp_path / "hang").touch()
    calls = tmp_path / "calls"
    kill_when_called(worker(f"chain-{mode}", kind, location, tmp_path), calls, "n3")
    written = history(kind, location)
    # Every checkpoint that landed is whole and chained to the one before it.
    ids = [c[3] for c in written]
    assert all(parent == ids[i - 1] for i, (_, _, parent, _) in enumerate(written) if i)
    assert all(status == "running" for status, *_ in written)
    (tmp_path / "hang").unlink()
    assert finish(worker("chain-resume", kind, location, tmp_path)) == {
        "status": "completed", "state": DONE, "interrupts": []}
    ran = calls.read_text().split()
    # n0..n2 finished before the kill and their checkpoints landed: none runs twice.
    assert ran == ["n0", "n1", "n2", "n3", "n3", "n4"]


def test_exit_durability_writes_nothing_until_the_run_ends(
    place: tuple[str, str], tmp_path: Path
) -> None:
    kind, location = place
    (tmp_path / "hang").touch()
    kill_when_called(worker("chain-exit", kind, location, tmp_path), tmp_path / "calls", "n3")
    assert history(kind, location) == []
    resume = worker("chain-resume", kind, location, tmp_path)
    _, err = resume.communicate(timeout=60)
    assert resume.returncode == 1
    assert b"CheckpointNotFound" in err


def test_sigkill_in_a_node_already_answered_keeps_the_answer(
    place: tuple[str, str], tmp_path: Path
) -> None:
    kind, location = place
    calls = tmp_path / "calls"
    paused = finish(worker("ask", kind, location, tmp_path))
    assert paused["status"] == "paused"
    [first] = paused["interrupts"]
    assert (first["value"], first["index"]) == ("publish?", 0)

    (tmp_path / "hang").touch()
    kill_when_called(worker("answer", kind, location, tmp_path), calls, "answered yes")
    (tmp_path / "hang").unlink()

    # A new process resumes without an answer: the recorded "yes" is replayed, the node goes
    # on to its second question, and the first is never asked again.
    again = finish(worker("resume", kind, location, tmp_path))
    assert again["status"] == "paused"
    [second] = again["interrupts"]
    assert (second["value"], second["index"]) == ("which channel?", 1)
    done = finish(worker("finish", kind, location, tmp_path))
    assert done["status"] == "completed"
    assert done["state"] == {"approved": "yes", "channel": "email"}
    assert calls.read_text().splitlines() == [
        "review", "review", "answered yes", "review", "answered yes", "review",
        "answered yes"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["sync", "async", "exit"])
async def test_each_mode_ends_with_the_same_state_and_its_own_checkpoints(
    mode: graph.Durability, store: CheckpointStore
) -> None:
    g = (
        graph.StateGraph("modes", reducers={"log": graph.append})
        .add_node("a", lambda s: {"log": ["a"]}).add_node("b", lambda s: {"log": ["b"]})
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )
    runner = graph.Runner(g, store, durability=mode)
    result = await runner.run(f"m-{mode}", {"log": []})
    assert result.state["log"] == ["a", "b"]
    statuses = [c.status for c in await store.history(f"m-{mode}")]
    expected = {"sync": ["running", "running", "completed"],
                "async": ["running", "running", "completed"],
                "exit": ["completed"]}[mode]
    assert statuses == expected


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["async", "exit"])
async def test_a_failure_is_recorded_in_every_mode(
    mode: graph.Durability, store: CheckpointStore
) -> None:
    def boom(state: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    g = (
        graph.StateGraph("fails").add_node("a", lambda s: {"x": 1}, inline=True)
        .add_node("b", boom).set_entry_point("a").add_edge("a", "b").set_finish_point("b")
        .compile()
    )
    runner = graph.Runner(g, store)
    with pytest.raises(NodeError):
        await runner.run("f", {}, durability=mode)
    latest = await store.latest("f")
    assert latest is not None
    assert (latest.status, latest.next, dict(latest.state)) == ("failed", ("b",), {"x": 1})
    with pytest.raises(NodeError):
        await runner.resume("f")


@pytest.mark.anyio
async def test_exit_mode_leaves_nothing_to_resume_after_a_cancel(store: CheckpointStore) -> None:
    started = asyncio.Event()

    async def hang(state: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(30)
        return {}

    g = (graph.StateGraph("c").add_node("a", lambda s: {"x": 1}, inline=True)
         .add_node("hang", hang).set_entry_point("a").add_edge("a", "hang")
         .set_finish_point("hang").compile())
    runner = graph.Runner(g, store, durability="exit")
    task = asyncio.ensure_future(runner.run("c", {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(CheckpointNotFound):
        await runner.resume("c")

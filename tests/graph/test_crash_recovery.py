"""Runs across processes: SIGKILL mid-node then resume elsewhere; one executor per session.

Also SQLite's write path: a lock held by another connection, and the WAL's size over time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos import graph
from chronos.store import PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL, unique_table

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"query": "ab", "doc": "abab", "summary": "ABAB", "done": True,
         "log": ["fetch", "slow", "finish"]}


def worker(command: str, kind: str, location: str, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.graph.crash_worker", command, kind, location, str(workdir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def finish(process: subprocess.Popen[bytes]) -> tuple[int, dict[str, Any]]:
    """The worker's exit code and what it printed."""
    out, err = process.communicate(timeout=60)
    assert process.returncode in (0, 3), err.decode()
    return process.returncode, orjson.loads(out)


def wait_until_in_slow(victim: subprocess.Popen[bytes], calls: Path) -> None:
    deadline = time.monotonic() + 30
    while "slow" not in (calls.read_text() if calls.exists() else ""):
        assert victim.poll() is None, victim.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the worker never reached the slow node"
        time.sleep(0.01)


def drop(table: str) -> None:
    async def go() -> None:
        async with PostgresStore(POSTGRES_URL, table=table) as store:
            await store.drop_table()

    asyncio.run(go())


def assert_refused(command: str, kind: str, location: str, workdir: Path) -> None:
    """A second process asking to execute the session is refused at once, running nothing."""
    before = (workdir / "calls").read_text()
    started = time.monotonic()
    code, out = finish(worker(command, kind, location, workdir))
    assert (code, out) == (3, {"conflict": "crash-session"})
    assert time.monotonic() - started < 20  # refused, not left waiting for the lease
    assert (workdir / "calls").read_text() == before


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_mid_node_then_resume_in_a_new_process(kind: str, tmp_path: Path) -> None:
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    (tmp_path / "hang").touch()
    calls = tmp_path / "calls"
    victim = worker("run", kind, location, tmp_path)
    try:
        wait_until_in_slow(victim, calls)
        # While the victim executes, nobody else may: neither a new run nor a resume.
        assert_refused("run", kind, location, tmp_path)
        assert_refused("resume", kind, location, tmp_path)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        (tmp_path / "hang").unlink()

        # The dead process's lease went with it (its connection, its file lock): the resume
        # is not refused, and does not wait for anything to expire.
        code, result = finish(worker("resume", kind, location, tmp_path))
        assert code == 0
        assert result == {"status": "completed", "state": FINAL}
        # fetch had finished before the kill: it never runs again; slow runs a second time.
        assert calls.read_text().split() == ["fetch", "slow", "slow", "finish"]
    finally:
        if victim.poll() is None:
            victim.kill()
        if kind == "postgres":
            drop(location)


def latest_pending(kind: str, location: str) -> dict[str, Any]:
    """The finished branches the session's newest checkpoint records, by task."""
    async def go() -> dict[str, Any]:
        store = SQLiteStore(location) if kind == "sqlite" else PostgresStore(POSTGRES_URL,
                                                                             table=location)
        async with store:
            latest = await store.latest("crash-session")
        return {} if latest is None else dict(latest.pending)

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_goto_from_a_branch_that_finished_before_sigkill_is_taken_on_resume(
    kind: str, tmp_path: Path
) -> None:
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    (tmp_path / "hang").touch()
    calls = tmp_path / "calls"
    victim = worker("branch", kind, location, tmp_path)
    try:
        wait_until_in_slow(victim, calls)
        deadline = time.monotonic() + 30
        while "router" not in latest_pending(kind, location):  # recorded beside slow running
            assert time.monotonic() < deadline, "router's update was never checkpointed"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        (tmp_path / "hang").unlink()

        code, result = finish(worker("resume-branch", kind, location, tmp_path))
        assert code == 0
        assert result == {"status": "completed",
                          "state": {"log": ["router", "slow", "extra"]}}
        # router ran once: its update and its goto came from the checkpoint.
        assert calls.read_text().split() == ["router", "slow", "slow", "extra"]
    finally:
        if victim.poll() is None:
            victim.kill()
        if kind == "postgres":
            drop(location)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_after_an_interrupt_node_in_a_parallel_subgraph_was_passed(
    kind: str, tmp_path: Path
) -> None:
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    calls = tmp_path / "calls"
    victim = None
    try:
        code, paused = finish(worker("gate", kind, location, tmp_path))
        assert (code, paused["status"]) == (0, "paused")
        (tmp_path / "hang").touch()
        # The answer passes the gate and answers ask; killed in slow, after ask's update
        # was recorded beside it.
        victim = worker("gate-answer", kind, location, tmp_path)
        wait_until_in_slow(victim, calls)
        deadline = time.monotonic() + 30
        while "ask" not in latest_pending(kind, location):
            assert time.monotonic() < deadline, "ask's update was never checkpointed"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        (tmp_path / "hang").unlink()

        # A resume without an answer: the gate stays passed, ask's answer and update stay.
        code, result = finish(worker("gate-resume", kind, location, tmp_path))
        assert code == 0
        assert result == {"status": "completed",
                          "state": {"log": ["prep", "slow", "ask=yes"]}}
        # Each run's tasks start side by side, in no set order; ask never ran a third time.
        seen = calls.read_text().split()
        assert [sorted(seen[:2]), sorted(seen[2:5]), seen[5:]] == [
            ["ask", "prep"], ["ask", "prep", "slow"], ["prep", "slow"]]
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
        if kind == "postgres":
            drop(location)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_refused_while_another_process_runs_then_resumes_after_it_ends(
    kind: str, tmp_path: Path
) -> None:
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    (tmp_path / "hang").touch()
    calls = tmp_path / "calls"
    first = worker("run", kind, location, tmp_path)
    try:
        wait_until_in_slow(first, calls)
        assert_refused("resume", kind, location, tmp_path)
        assert_refused("run", kind, location, tmp_path)
        (tmp_path / "hang").unlink()
        assert finish(first) == (0, {"status": "completed", "state": FINAL})

        # The lease was given back at the end of the run: the resume goes through, and finds
        # the session completed, so nothing runs a second time.
        assert finish(worker("resume", kind, location, tmp_path)) == (
            0, {"status": "completed", "state": FINAL})
        assert calls.read_text().split() == ["fetch", "slow", "finish"]
    finally:
        if first.poll() is None:
            first.kill()
        if kind == "postgres":
            drop(location)


def test_paused_in_one_process_is_resumed_from_another(tmp_path: Path) -> None:
    table = unique_table()
    try:
        code, paused = finish(worker("pause", "postgres", table, tmp_path))
        assert (code, paused["status"]) == (0, "paused")
        assert paused["state"] == {"query": "hello world", "text": "Hello World", "log": ["draft"]}

        code, done = finish(worker("approve", "postgres", table, tmp_path))
        assert code == 0
        assert done == {"status": "completed", "state": {
            "query": "hello world", "text": "Hello World", "approved": True,
            "published": "Hello World", "log": ["draft", "approve"]}}
        assert (tmp_path / "calls").read_text().split() == ["draft", "approve"]
    finally:
        drop(table)


def test_sqlite_checkpoints_wait_for_a_lock_held_elsewhere_and_the_wal_stays_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    g = (
        graph.StateGraph("g").add_node("a", lambda s: {"n": 1}, inline=True)
        .add_node("b", lambda s: {"n": 2}, inline=True)
        .set_entry_point("a").add_edge("a", "b").set_finish_point("b").compile()
    )

    async def go() -> None:
        async with SQLiteStore(path) as store:
            runner = graph.Runner(g, store)
            await runner.run("warm", {})  # the store is open: its writes now skip the thread
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process's write transaction
            try:
                run = asyncio.ensure_future(runner.run("s", {}))
                await asyncio.sleep(0.3)  # the loop is free meanwhile: the write waits elsewhere
                assert not run.done()
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert (await run).status == "completed"
            assert [c.state for c in await runner.list_checkpoints("s")] == [{}, {"n": 1},
                                                                              {"n": 2}]
            # 1,500 runs write 4,500 checkpoints, ~50 MB of WAL frames if nothing copied the
            # WAL back into the database; the store thread does, so the WAL is reused.
            for i in range(1500):
                await runner.run(f"many-{i}", {"pad": "x" * 1000})
            assert len(await runner.list_checkpoints("many-1499")) == 3
            assert (tmp_path / "runs.db-wal").stat().st_size < 16_000_000

    asyncio.run(go())

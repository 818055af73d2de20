"""A run killed with SIGKILL in the middle of a node resumes in another process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from chronos.store import PostgresStore
from tests.store.backends import POSTGRES_URL, unique_table

ROOT = Path(__file__).resolve().parents[2]


def worker(command: str, kind: str, location: str, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.graph.crash_worker", command, kind, location, str(workdir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_mid_node_then_resume_in_a_new_process(kind: str, tmp_path: Path) -> None:
    location = str(tmp_path / "runs.db") if kind == "sqlite" else unique_table()
    (tmp_path / "hang").touch()
    calls = tmp_path / "calls"
    victim = worker("run", kind, location, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while "slow" not in (calls.read_text() if calls.exists() else ""):
            assert victim.poll() is None, victim.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the worker never reached the slow node"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        (tmp_path / "hang").unlink()

        survivor = worker("resume", kind, location, tmp_path)
        out, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err.decode()
        result = orjson.loads(out)
        assert result["status"] == "completed"
        assert result["state"] == {"query": "ab", "doc": "abab", "summary": "ABAB",
                                   "done": True, "log": ["fetch", "slow", "finish"]}
        # fetch had finished before the kill: it never runs again; slow runs a second time.
        assert calls.read_text().split() == ["fetch", "slow", "slow", "finish"]
    finally:
        if victim.poll() is None:
            victim.kill()
        if kind == "postgres":
            async def drop() -> None:
                async with PostgresStore(POSTGRES_URL, table=location) as store:
                    await store.drop_table()

            asyncio.run(drop())

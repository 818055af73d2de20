"""PostgreSQL going away under a `PostgresStore`: its connections killed, the server restarted.

The shared server on 127.0.0.1:5432 must not be stopped, so a restart is simulated there by
`pg_terminate_backend` on exactly this store's connections (found by a unique
`application_name`), which is what a restart does to a client. One test also restarts a real,
throwaway server (`initdb` + `pg_ctl` in a temporary directory, as the `postgres` user).

What holds:
- connections that died while idle in the pool are replaced transparently: the pool checks a
  connection before handing it out, so the first call after a restart succeeds;
- a statement in flight when its connection dies fails with a `StoreError` (never retried: it
  may or may not have committed); a run then fails cleanly, records its failure on a fresh
  connection, and `resume` completes it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from chronos import graph
from chronos.errors import StoreError
from chronos.store import Checkpoint, PostgresStore
from tests.store.backends import POSTGRES_URL, unique_table

pytestmark = pytest.mark.anyio


def checkpoint(session: str, step: int) -> Checkpoint:
    return Checkpoint(id=uuid.uuid4().hex, session_id=session, run_id="r", graph_id="g",
                      step=step, status="running", ran=(), next=("a",), state={"step": step})


@contextmanager
def named_store(url: str = POSTGRES_URL) -> Iterator[tuple[PostgresStore, str, str]]:
    """A store whose connections carry a unique application_name; its table dropped after."""
    name = f"chronos-restart-{uuid.uuid4().hex[:12]}"
    table = unique_table()
    separator = "&" if "?" in url else "?"
    store = PostgresStore(f"{url}{separator}application_name={name}", table=table)
    try:
        yield store, name, table
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


async def kill_connections(name: str, url: str = POSTGRES_URL) -> int:
    """Terminate every backend of `name`, wait until they are gone; how many there were."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))
        pids = [row[0] for row in await cursor.fetchall()]
        await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid",
                           (pids,))
        # The pool may open new connections (same name) meanwhile: wait for these pids only.
        with anyio.fail_after(10):
            while True:
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
                row = await cursor.fetchone()
                if row is None or row[0] == 0:
                    return len(pids)
                await anyio.sleep(0.02)


async def test_idle_connections_killed_are_replaced_without_an_error() -> None:
    with named_store() as (store, name, _):
        async with store:
            for step in range(3):
                await store.put(checkpoint("s", step))
            # Several pooled connections, all idle, all about to die.
            await asyncio.gather(*(store.history("s") for _ in range(5)))
            assert await kill_connections(name) >= 1
            # Every kind of call, first thing after the "restart".
            await store.put(checkpoint("s", 3))
            assert [c.step for c in await store.history("s")] == [0, 1, 2, 3]
            latest = await store.latest("s")
            assert latest is not None
            assert latest.step == 3
            assert (await store.get(latest.id)).state == {"step": 3}
            # Several restarts in a row, with concurrent callers each time.
            for round_ in range(3):
                assert await kill_connections(name) >= 1
                steps = range(4 + 5 * round_, 9 + 5 * round_)
                await asyncio.gather(*(store.put(checkpoint("s", i)) for i in steps))
            assert len(await store.history("s")) == 19


def chain(calls: Counter[str], hooks: dict[str, Any]) -> graph.CompiledGraph:
    def node(name: str) -> Any:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            calls[name] += 1
            if name in hooks:
                await hooks[name]()
            return {"trail": [name]}

        return run

    g = graph.StateGraph("chain", reducers={"trail": graph.append})
    for name in "abcd":
        g.add_node(name, node(name))
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", "d")
    return g.set_entry_point("a").set_finish_point("d").compile()


async def test_a_run_outlives_its_connections_being_killed_between_steps() -> None:
    calls: Counter[str] = Counter()
    with named_store() as (store, name, _):
        killed: list[int] = []

        async def restart() -> None:
            killed.append(await kill_connections(name))

        async with store:
            runner = graph.Runner(chain(calls, {"b": restart, "c": restart}), store)
            with anyio.fail_after(30):
                result = await runner.run("s", {"trail": []})
            assert result.status == "completed"
            assert result.state["trail"] == ["a", "b", "c", "d"]
            assert calls == Counter(a=1, b=1, c=1, d=1)
            assert all(k >= 1 for k in killed)  # the lease's connection, at least
            history = await store.history("s")
            assert [c.ran for c in history] == [(), ("a",), ("b",), ("c",), ("d",)]
            # The lease's connection died with the rest; the session is free again.
            assert (await runner.resume("s")).status == "completed"


async def test_a_statement_killed_in_flight_fails_the_run_and_resume_completes() -> None:
    calls: Counter[str] = Counter()
    with named_store() as (store, name, table):
        function = f"slow_{uuid.uuid4().hex[:12]}"
        async with store:
            await store.latest("-")  # creates the table
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                # The checkpoint after node b takes long enough to be caught in flight.
                conn.execute(
                    f"CREATE FUNCTION {function}() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.step = 2 AND NEW.status = 'running' THEN PERFORM pg_sleep(30); "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
                conn.execute(f"CREATE TRIGGER slow BEFORE INSERT ON {table} "
                             f"FOR EACH ROW EXECUTE FUNCTION {function}()")
            try:
                runner = graph.Runner(chain(calls, {}), store)
                async with anyio.create_task_group() as tg:
                    outcome: list[BaseException] = []

                    async def run() -> None:
                        try:
                            await runner.run("s", {"trail": []})
                        except StoreError as exc:
                            outcome.append(exc)

                    tg.start_soon(run)
                    with anyio.fail_after(20):
                        await wait_for_sleeping_insert(name)
                        await kill_connections(name)
                assert outcome, "the run did not fail"
                assert "PostgreSQL store" in str(outcome[0])
                latest = await store.latest("s")
                # The failure is recorded on a fresh connection: the state after a, b next.
                assert latest is not None
                assert latest.status == "failed"
                assert latest.state["trail"] == ["a"]
                assert latest.next == ("b",)
                with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                    conn.execute(f"DROP TRIGGER slow ON {table}")
                result = await runner.resume("s")
                assert result.status == "completed"
                assert result.state["trail"] == ["a", "b", "c", "d"]
                assert calls == Counter(a=1, b=2, c=1, d=1)
            finally:
                with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                    conn.execute(f"DROP TRIGGER IF EXISTS slow ON {table}")
                    conn.execute(f"DROP FUNCTION IF EXISTS {function}()")


async def wait_for_sleeping_insert(name: str) -> None:
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event = 'PgSleep'", (name,))
            row = await cursor.fetchone()
            if row and row[0]:
                return
            await anyio.sleep(0.02)


# --- a real restart, of a throwaway server ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_bin(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    assert candidates, f"{tool} is not installed"
    return str(candidates[-1])


class ThrowawayPostgres:
    """A PostgreSQL server of our own in `directory`, run as the `postgres` user."""

    def __init__(self, directory: Path) -> None:
        self.data = directory / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root: then the server runs as `postgres`, in a directory
        # it owns (pytest's tmp_path is private to root).
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(directory, self._user)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=60, user=self._user,
                       cwd=self.data.parent)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-k {self.data}")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "30",
                  "-l", str(self.data / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")


async def test_a_real_server_restart_between_steps() -> None:
    with tempfile.TemporaryDirectory(prefix="chronos-pg-") as directory:
        await _restart_between_steps(ThrowawayPostgres(Path(directory)))


async def _restart_between_steps(server: ThrowawayPostgres) -> None:
    server.start()
    try:
        calls: Counter[str] = Counter()

        async def restart() -> None:
            await anyio.to_thread.run_sync(server.stop, "immediate")  # as a crash would
            await anyio.to_thread.run_sync(server.start)

        async with PostgresStore(server.url, table="checkpoints") as store:
            runner = graph.Runner(chain(calls, {"b": restart}), store)
            with anyio.fail_after(60):
                result = await runner.run("s", {"trail": []})
            assert result.status == "completed"
            assert result.state["trail"] == ["a", "b", "c", "d"]
            assert calls == Counter(a=1, b=1, c=1, d=1)
            history = await store.history("s")
            assert [c.ran for c in history] == [(), ("a",), ("b",), ("c",), ("d",)]
    finally:
        server.stop("immediate")

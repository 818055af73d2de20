"""A process that runs (or resumes) a graph, for the SIGKILL test.

    python -m tests.graph.crash_worker run|resume sqlite|postgres LOCATION WORKDIR

Each node appends its name to WORKDIR/calls when it starts. Node "slow" blocks forever while
WORKDIR/hang exists, so the test can kill the process in the middle of it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from chronos import graph
from chronos.store import CheckpointStore, PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL


def build(workdir: Path) -> graph.CompiledGraph:
    def record(name: str) -> None:
        with open(workdir / "calls", "a") as f:
            f.write(name + "\n")

    async def fetch(state: dict[str, Any]) -> dict[str, Any]:
        record("fetch")
        return {"doc": state["query"] * 2, "log": ["fetch"]}

    def slow(state: dict[str, Any]) -> dict[str, Any]:
        record("slow")
        while (workdir / "hang").exists():
            time.sleep(0.01)
        return {"summary": state["doc"].upper(), "log": ["slow"]}

    async def finish(state: dict[str, Any]) -> dict[str, Any]:
        record("finish")
        return {"done": True, "log": ["finish"]}

    return (
        graph.StateGraph("crashable", reducers={"log": graph.append})
        .add_node("fetch", fetch).add_node("slow", slow).add_node("finish", finish)
        .set_entry_point("fetch").add_edge("fetch", "slow").add_edge("slow", "finish")
        .set_finish_point("finish").compile()
    )


async def main(command: str, kind: str, location: str, workdir: Path) -> None:
    store: CheckpointStore
    if kind == "sqlite":
        store = SQLiteStore(location)
    else:
        store = PostgresStore(POSTGRES_URL, table=location)
    runner = graph.Runner(build(workdir), store)
    if command == "run":
        result = await runner.run("crash-session", {"query": "ab", "log": []})
    else:
        result = await runner.resume("crash-session")
    sys.stdout.write(orjson.dumps({"status": result.status, "state": dict(result.state)}).decode())
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))

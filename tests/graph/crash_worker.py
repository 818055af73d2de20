"""A process that runs (or resumes) a graph, for the SIGKILL and cross-process tests.

    python -m tests.graph.crash_worker run|resume|pause|approve|branch|resume-branch \
        sqlite|postgres LOCATION WORKDIR

Each node appends its name to WORKDIR/calls when it starts. Node "slow" blocks forever while
WORKDIR/hang exists, so the test can kill the process in the middle of it. "pause" runs a graph
that stops before its interrupt node, "approve" resumes it with an answer. "branch" runs a
graph whose "router" returns a `Command(goto=...)` beside "slow" in one parallel step. A run
refused because another process holds the session prints {"conflict": session_id} and exits
with 3.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from chronos import graph
from chronos.errors import RunConflictError
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


def build_pausing(workdir: Path) -> graph.CompiledGraph:
    """draft, then a human's approval (an interrupt node), then publish."""
    def record(name: str) -> None:
        with open(workdir / "calls", "a") as f:
            f.write(name + "\n")

    async def draft(state: dict[str, Any]) -> dict[str, Any]:
        record("draft")
        return {"text": state["query"].title(), "log": ["draft"]}

    async def approve(state: dict[str, Any]) -> dict[str, Any]:
        record("approve")
        return {"published": state["text"] if state.get("approved") else "", "log": ["approve"]}

    return (
        graph.StateGraph("pausable", reducers={"log": graph.append})
        .add_node("draft", draft).add_interrupt_node("approve", approve)
        .set_entry_point("draft").add_edge("draft", "approve")
        .set_finish_point("approve").compile()
    )


def build_branching(workdir: Path) -> graph.CompiledGraph:
    """"router" (whose Command sends the run on to "extra") and "slow", side by side."""
    def record(name: str) -> None:
        with open(workdir / "calls", "a") as f:
            f.write(name + "\n")

    async def router(state: dict[str, Any]) -> graph.Command:
        record("router")
        return graph.Command(update={"log": ["router"]}, goto="extra")

    def slow(state: dict[str, Any]) -> dict[str, Any]:
        record("slow")
        while (workdir / "hang").exists():
            time.sleep(0.01)
        return {"log": ["slow"]}

    async def extra(state: dict[str, Any]) -> dict[str, Any]:
        record("extra")
        return {"log": ["extra"]}

    return (
        graph.StateGraph("branching", reducers={"log": graph.append})
        .add_node("router", router, destinations=["extra"]).add_node("slow", slow)
        .add_node("extra", extra).add_edge(graph.START, ["router", "slow"])
        .add_edge("slow", graph.END).set_finish_point("extra").compile()
    )


async def main(command: str, kind: str, location: str, workdir: Path) -> None:
    store: CheckpointStore
    if kind == "sqlite":
        store = SQLiteStore(location)
    else:
        store = PostgresStore(POSTGRES_URL, table=location)
    if command in ("pause", "approve"):
        compiled = build_pausing(workdir)
    elif command in ("branch", "resume-branch"):
        compiled = build_branching(workdir)
    else:
        compiled = build(workdir)
    runner = graph.Runner(compiled, store)
    try:
        if command == "run":
            result = await runner.run("crash-session", {"query": "ab", "log": []})
        elif command == "branch":
            result = await runner.run("crash-session", {"log": []})
        elif command == "pause":
            result = await runner.run("crash-session", {"query": "hello world", "log": []})
        elif command == "approve":
            result = await runner.resume("crash-session", {"approved": True})
        else:
            result = await runner.resume("crash-session")
    except RunConflictError as exc:
        sys.stdout.write(orjson.dumps({"conflict": exc.session_id}).decode())
        sys.exit(3)
    finally:
        await store.aclose()
    sys.stdout.write(orjson.dumps({"status": result.status, "state": dict(result.state)}).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))

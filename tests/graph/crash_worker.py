"""A process that runs (or resumes) a graph, for the SIGKILL and cross-process tests.

    python -m tests.graph.crash_worker run|resume|pause|approve|branch|resume-branch| \
        gate|gate-answer|gate-resume sqlite|postgres LOCATION WORKDIR

Each node appends its name to WORKDIR/calls when it starts. Node "slow" blocks forever while
WORKDIR/hang exists, so the test can kill the process in the middle of it. "pause" runs a graph
that stops before its interrupt node, "approve" resumes it with an answer. "branch" runs a
graph whose "router" returns a `Command(goto=...)` beside "slow" in one parallel step. "gate"
runs a subgraph (prep, the interrupt node "gate", then "slow") beside "ask", which calls
`interrupt()`; "gate-answer" resumes it answering "yes", "gate-resume" without an answer. A run
refused because another process holds the session prints {"conflict": session_id} and exits
with 3.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from chronos import graph
from chronos.errors import RunConflictError
from chronos.store import CheckpointStore, PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL


def recorder(workdir: Path) -> Callable[[str], None]:
    """Appends a node's name to WORKDIR/calls."""
    def record(name: str) -> None:
        with open(workdir / "calls", "a") as f:
            f.write(name + "\n")

    return record


def slow_node(
    workdir: Path, update: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A sync node "slow" that blocks while WORKDIR/hang exists, then returns `update(state)`."""
    record = recorder(workdir)

    def slow(state: dict[str, Any]) -> dict[str, Any]:
        record("slow")
        while (workdir / "hang").exists():
            time.sleep(0.01)
        return update(state)

    return slow


def build(workdir: Path) -> graph.CompiledGraph:
    record = recorder(workdir)

    async def fetch(state: dict[str, Any]) -> dict[str, Any]:
        record("fetch")
        return {"doc": state["query"] * 2, "log": ["fetch"]}

    slow = slow_node(workdir, lambda state: {"summary": state["doc"].upper(), "log": ["slow"]})

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
    record = recorder(workdir)

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
    record = recorder(workdir)

    async def router(state: dict[str, Any]) -> graph.Command:
        record("router")
        return graph.Command(update={"log": ["router"]}, goto="extra")

    slow = slow_node(workdir, lambda state: {"log": ["slow"]})

    async def extra(state: dict[str, Any]) -> dict[str, Any]:
        record("extra")
        return {"log": ["extra"]}

    return (
        graph.StateGraph("branching", reducers={"log": graph.append})
        .add_node("router", router, destinations=["extra"]).add_node("slow", slow)
        .add_node("extra", extra).add_edge(graph.START, ["router", "slow"])
        .add_edge("slow", graph.END).set_finish_point("extra").compile()
    )


def build_gated(workdir: Path) -> graph.CompiledGraph:
    """A subgraph with an interrupt node, beside a node that asks a question."""
    record = recorder(workdir)

    async def prep(state: dict[str, Any]) -> dict[str, Any]:
        record("prep")
        return {"log": ["prep"]}

    slow = slow_node(workdir, lambda state: {"log": ["slow"]})

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        record("ask")
        return {"log": [f"ask={graph.interrupt('ok?')}"]}

    inner = (
        graph.StateGraph("inner", reducers={"log": graph.append})
        .add_node("prep", prep).add_interrupt_node("gate").add_node("slow", slow)
        .set_entry_point("prep").add_edge("prep", "gate").add_edge("gate", "slow")
        .set_finish_point("slow").compile()
    )
    return (
        graph.StateGraph("gated", reducers={"log": graph.append})
        .add_subgraph("sub", inner).add_node("ask", ask)
        .add_edge(graph.START, ["sub", "ask"]).add_edge(["sub", "ask"], graph.END).compile()
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
    elif command.startswith("gate"):
        compiled = build_gated(workdir)
    else:
        compiled = build(workdir)
    runner = graph.Runner(compiled, store)
    try:
        if command == "run":
            result = await runner.run("crash-session", {"query": "ab", "log": []})
        elif command in ("branch", "gate"):
            result = await runner.run("crash-session", {"log": []})
        elif command == "gate-answer":
            result = await runner.resume("crash-session", resume="yes")
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

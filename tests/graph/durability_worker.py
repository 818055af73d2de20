"""A process that runs a graph until it is killed, for the durability and interrupt crash tests.

    python -m tests.graph.durability_worker COMMAND sqlite|postgres LOCATION WORKDIR

Every node appends a line to WORKDIR/calls when it starts, and blocks while WORKDIR/hang
exists once it reaches its blocking point, so the test can SIGKILL the process there.

Commands: "chain-sync", "chain-async", "chain-exit" run five nodes n0..n4 (n3 blocks) with
that durability; "chain-resume" resumes that session. "ask" runs a node that asks two
questions (blocking between them); "answer" resumes it with "yes", "resume" without an
answer, "finish" with "email". Prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from chronos import graph
from chronos.store import CheckpointStore, PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL

SESSION = "durable"


def _recorder(workdir: Path) -> Any:
    def record(line: str) -> None:
        with open(workdir / "calls", "a") as f:
            f.write(line + "\n")

    return record


def _block(workdir: Path) -> None:
    while (workdir / "hang").exists():
        time.sleep(0.01)


def chain(workdir: Path) -> graph.CompiledGraph:
    record = _recorder(workdir)

    def node(name: str) -> Any:
        def run(state: dict[str, Any]) -> dict[str, Any]:
            record(name)
            if name == "n3":
                _block(workdir)
            return {"log": [name]}

        return run

    g = graph.StateGraph("chain", reducers={"log": graph.append})
    names = [f"n{i}" for i in range(5)]
    for name in names:
        g.add_node(name, node(name))
    g.set_entry_point(names[0]).set_finish_point(names[-1])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    return g.compile()


def asking(workdir: Path) -> graph.CompiledGraph:
    record = _recorder(workdir)

    def review(state: dict[str, Any]) -> dict[str, Any]:
        record("review")
        approved = graph.interrupt("publish?")
        record(f"answered {approved}")
        _block(workdir)
        channel = graph.interrupt("which channel?")
        return {"approved": approved, "channel": channel}

    return (graph.StateGraph("asking").add_node("review", review)
            .set_entry_point("review").set_finish_point("review").compile())


async def main(command: str, kind: str, location: str, workdir: Path) -> None:
    store: CheckpointStore = (
        SQLiteStore(location) if kind == "sqlite" else PostgresStore(POSTGRES_URL, table=location)
    )
    is_chain = command.startswith("chain")
    runner = graph.Runner(chain(workdir) if is_chain else asking(workdir), store)
    try:
        if command in ("chain-sync", "chain-async", "chain-exit"):
            mode: graph.Durability = command.removeprefix("chain-")  # type: ignore[assignment]
            result = await runner.run(SESSION, {"log": []}, durability=mode)
        elif command == "chain-resume":
            result = await runner.resume(SESSION)
        elif command == "ask":
            result = await runner.run(SESSION, {})
        elif command == "answer":
            result = await runner.resume(SESSION, resume="yes")
        elif command == "finish":
            result = await runner.resume(SESSION, resume="email")
        else:
            result = await runner.resume(SESSION)
    finally:
        await store.aclose()
    sys.stdout.write(orjson.dumps({
        "status": result.status, "state": dict(result.state),
        "interrupts": [i.record() for i in result.interrupts],
    }).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))

"""Two checkouts' interrupt + resume round trip side by side: CPU us and instructions per trip.

    .venv/bin/python bench/graph_interrupts_ab.py /work/main .                 # CPU time, 5 rounds
    .venv/bin/python bench/graph_interrupts_ab.py /work/main . --instructions  # valgrind counts
    .venv/bin/python bench/graph_interrupts_ab.py /work/main . --store sqlite

Each argument is a checkout with its own `.venv` (its compiled build, if current). The workload
is `graph_interrupts.py`'s, chronos alone: a one-node graph whose node calls `interrupt()`,
run and then resumed with the answer, on a `MemoryStore` (or a `SQLiteStore` in a temporary
directory), in a process that has imported LangGraph as `graph_interrupts.py`'s has (its
langsmith imports OpenTelemetry, which chronos then asks for a tracer provider per run). The
rounds alternate between the checkouts, each in a fresh process, so both see the same machine
load; each prints the median CPU time per round trip of `--repeat` runs of `--trips` round
trips.

`--instructions` counts instead the instructions per round trip under valgrind (cachegrind,
no cache simulation): the count of a process making 1,050 round trips less that of one making
50, over 1,000. It does not move with the load of a shared machine, unlike time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _ab import compare, run_workload, summary

_WORKLOAD = """
import asyncio, gc, os, statistics, tempfile, time
import langgraph.graph  # as in graph_interrupts.py's process: langsmith loads OpenTelemetry
from chronos import graph, store

COUNT, REPEAT, STORE = int(os.environ["COUNT"]), int(os.environ["REPEAT"]), os.environ["STORE"]

async def ask(state):
    return {"answer": graph.interrupt("publish?")}

compiled = (graph.StateGraph("ask").add_node("ask", ask)
            .set_entry_point("ask").set_finish_point("ask").compile())

async def once(index):
    if STORE == "memory":
        checkpoints = store.MemoryStore()
    else:
        checkpoints = store.SQLiteStore(os.path.join(tempfile.mkdtemp(), f"{index}.db"))
    runner = graph.Runner(compiled, checkpoints)
    try:
        await runner.run("warm", {})
        await runner.resume("warm", resume="yes")
        cpu = time.process_time()
        for i in range(COUNT):
            await runner.run(f"s{i}", {})
            done = await runner.resume(f"s{i}", resume="yes")
            assert done.state["answer"] == "yes"
        return (time.process_time() - cpu) / max(COUNT, 1) * 1e6
    finally:
        await checkpoints.aclose()

async def main():
    runs = []
    for index in range(REPEAT):
        gc.collect()
        runs.append(await once(index))
    return statistics.median(runs)

print(asyncio.run(main()))
"""


def _run(checkout: Path, store: str, trips: int, repeat: int, valgrind: bool) -> float:
    """CPU us per round trip (median), or with `valgrind` all the process's instructions."""
    env = {"STORE": store, "COUNT": str(trips), "REPEAT": str(repeat)}
    return run_workload(checkout, _WORKLOAD, env, valgrind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="runs per round (CPU time)")
    parser.add_argument("--trips", type=int, default=500, help="round trips per run")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    found = compare(
        args.checkouts,
        lambda checkout: _run(checkout, args.store, args.trips, args.repeat, valgrind=False),
        lambda checkout, trips: _run(checkout, args.store, trips, 1, valgrind=True),
        rounds=args.rounds, instructions=args.instructions, sizes=(50, 1_050))
    unit = "instructions" if args.instructions else "CPU us"
    for checkout, values in found.items():
        print(f"{checkout}: {unit} per round trip ({args.store}), {summary(values, ',.1f')}")

if __name__ == "__main__":
    main()

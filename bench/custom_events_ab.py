"""Two checkouts' custom-event paths side by side: CPU ns and instructions per `emit()`.

    .venv/bin/python bench/custom_events_ab.py /work/main .                 # CPU time, 3 rounds
    .venv/bin/python bench/custom_events_ab.py /work/main . --instructions  # valgrind counts
    .venv/bin/python bench/custom_events_ab.py /work/main . --kind token    # the token path

Each argument is a checkout with its own `.venv` (its compiled build, if current). The workload
is `graph_vs_langgraph.custom_burst`'s, chronos alone: one async node calls `emit()` 100,000
times (an `await asyncio.sleep(0)` every 100) while `runner.stream()` reads them, checking
`evt.type`. The rounds alternate between the checkouts, each in a fresh process, so both see
the same machine load; each prints the median CPU time per event of `--repeat` runs.

`--instructions` counts instead the instructions per event under valgrind (cachegrind, no
cache simulation): the count of a run of 101,000 events less that of 1,000, over 100,000. It
does not move with the load of a shared machine, unlike time; valgrind must be installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _ab import compare, run_workload, summary

_WORKLOAD = """
import asyncio, gc, os, statistics, time
from chronos import graph
from chronos.graph import emit

COUNT, REPEAT = int(os.environ["COUNT"]), int(os.environ["REPEAT"])
TYPE, MODE = ("token", "messages") if os.environ["KIND"] == "token" else ("progress", "custom")
KIND = os.environ["KIND"]

async def node(state):
    for i in range(COUNT):
        emit(TYPE, i)
        if i % 100 == 0:
            await asyncio.sleep(0)

async def once():
    g = graph.StateGraph("burst").add_node("emit", node)
    runner = graph.Runner(g.set_entry_point("emit").set_finish_point("emit").compile())
    events = runner.stream(MODE)
    received = 0
    async def consume():
        nonlocal received
        async for evt in events:
            if evt.type == KIND:
                received += 1
    cpu = time.process_time()
    await asyncio.gather(consume(), runner.run("s", {}))
    assert received == COUNT, received
    return (time.process_time() - cpu) / COUNT * 1e9

async def main():
    runs = []
    for _ in range(REPEAT):
        gc.collect()
        runs.append(await once())
    return statistics.median(runs)

print(asyncio.run(main()))
"""


def _run(checkout: Path, kind: str, count: int, repeat: int, valgrind: bool) -> float:
    """CPU ns per event (median), or with `valgrind` all the run's instructions."""
    env = {"KIND": kind, "COUNT": str(count), "REPEAT": str(repeat)}
    return run_workload(checkout, _WORKLOAD, env, valgrind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--kind", choices=["custom", "token"], default="custom")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7, help="runs per round (CPU time)")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    found = compare(
        args.checkouts,
        lambda checkout: _run(checkout, args.kind, 100_000, args.repeat, valgrind=False),
        lambda checkout, count: _run(checkout, args.kind, count, 1, valgrind=True),
        rounds=args.rounds, instructions=args.instructions, sizes=(1_000, 101_000))
    unit = "instructions" if args.instructions else "CPU ns"
    for checkout, values in found.items():
        print(f"{checkout}: {unit} per {args.kind} event, {summary(values, '.0f')}")

if __name__ == "__main__":
    main()

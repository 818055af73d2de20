"""Workload 5 of `graph_vs_langgraph.py` in wall-clock and CPU time, side by side, repeated.

    .venv/bin/python bench/graph_interrupts.py                 # 200 round trips, 5 repeats
    .venv/bin/python bench/graph_interrupts.py --runs 50 --repeat 3

The same graphs and calls as workload 5 (`graph_features.py`): a one-node graph whose node
calls `interrupt()`, run and then resumed with the answer, in chronos and in LangGraph, on
the in-memory and the SQLite stores/savers. Each repeat times chronos then LangGraph on one
store after the other, in this one process, after a warm-up round trip each: microseconds
per round trip, wall clock and CPU time (`time.process_time`). Printed: the medians, and the
median and the lowest of the per-repeat ratios (LangGraph / chronos), which on a shared
machine say more than any absolute figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from graph_features import _AskState, _chronos_ask, _lg_ask
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from chronos import graph, store
from chronos.graph import _events

_counter = itertools.count()
Figures = tuple[float, float]  # wall, CPU: microseconds per round trip


async def _timed(runs: int, round_trip: Callable[[str], Awaitable[None]]) -> Figures:
    await round_trip(f"warm{next(_counter)}")
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        await round_trip(f"s{next(_counter)}")
    return ((time.perf_counter() - wall) / runs * 1e6, (time.process_time() - cpu) / runs * 1e6)


async def _chronos(runs: int, checkpoints: Any) -> Figures:
    compiled = (graph.StateGraph("ask").add_node("ask", _chronos_ask)
                .set_entry_point("ask").set_finish_point("ask").compile())
    runner = graph.Runner(compiled, checkpoints)

    async def round_trip(session: str) -> None:
        await runner.run(session, {})
        done = await runner.resume(session, resume="yes")
        assert done.state["answer"] == "yes"

    try:
        return await _timed(runs, round_trip)
    finally:
        await checkpoints.aclose()


async def _langgraph(runs: int, saver: Any) -> Figures:
    g = StateGraph(_AskState)
    g.add_node("ask", _lg_ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    app = g.compile(checkpointer=saver)

    async def round_trip(session: str) -> None:
        config = {"configurable": {"thread_id": session}}
        await app.ainvoke({}, config)
        done = await app.ainvoke(Command(resume="yes"), config)
        assert done["answer"] == "yes"

    return await _timed(runs, round_trip)


async def _lg_sqlite(runs: int, path: str) -> Figures:
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        return await _langgraph(runs, saver)


async def main(runs: int, repeat: int) -> None:
    workdir = tempfile.mkdtemp()
    figures: dict[str, list[Figures]] = {}
    for _ in range(repeat):
        cases = {
            "chronos memory": lambda: _chronos(runs, store.MemoryStore()),
            "langgraph memory": lambda: _langgraph(runs, InMemorySaver()),
            "chronos sqlite": lambda: _chronos(runs, store.SQLiteStore(
                os.path.join(workdir, f"c{next(_counter)}.db"))),
            "langgraph sqlite": lambda: _lg_sqlite(
                runs, os.path.join(workdir, f"l{next(_counter)}.db")),
        }
        for name, measure in cases.items():
            gc.collect()
            figures.setdefault(name, []).append(await measure())
    compiled = _events.__file__.endswith((".so", ".pyd"))
    print(f"{runs} round trips x {repeat}; event path {'compiled' if compiled else 'interpreted'};"
          f" load average {os.getloadavg()[0]:.1f}")
    for label in ("memory", "sqlite"):
        ours, theirs = figures[f"chronos {label}"], figures[f"langgraph {label}"]
        print(f"{label}: chronos {_medians(ours)}, langgraph {_medians(theirs)} us (wall/CPU)")
        for kind, at in (("wall", 0), ("CPU", 1)):
            ratios = [lg[at] / ch[at] for ch, lg in zip(ours, theirs, strict=True)]
            print(f"  {kind} ratio: median {statistics.median(ratios):.1f}x, "
                  f"lowest {min(ratios):.1f}x")


def _medians(figures: list[Figures]) -> str:
    return "/".join(f"{statistics.median(f[at] for f in figures):,.0f}" for at in (0, 1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="round trips per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per figure")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.repeat))

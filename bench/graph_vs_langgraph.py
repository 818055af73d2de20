"""Chronos graph runner vs LangGraph, same workloads, one process, one command.

    .venv/bin/python bench/graph_vs_langgraph.py            # the full run (a few minutes)
    .venv/bin/python bench/graph_vs_langgraph.py --quick    # a smoke run
    CHRONOS_INTERPRETED=1 .venv/bin/python bench/graph_vs_langgraph.py
                            # the source, interpreted; without it the venv that
                            # scripts/setup made runs the mypyc-compiled event path
                            # while build/compiled matches the source (README)

Workloads (each timed `--repeat` times; the median is printed):
  1. a linear chain of 50 trivial nodes, run `--runs` times: microseconds per node step, with
     no checkpointer, an in-memory one, and SQLite (a file, WAL; both survive SIGKILL; chronos
     commits with synchronous=NORMAL, LangGraph's savers keep SQLite's default FULL, which
     fsyncs every commit, so chronos is also measured with FULL: "sqlite-fsync");
  2. the same chain streamed, each node emitting one custom event and one token: events per
     second a consumer receives, per stream mode;
  3. one node emitting 100,000 custom events: events per second received, and the time from
     the start of the run to the first event in the consumer's hands;
  4. one node streaming 20,000 tokens: microseconds each token adds to the run, consumer
     included (the same node without tokens is the baseline).
  5-7. interrupt + resume round trips, a 100-branch `Send` fan-out, and the durability
     modes on SQLite: see `bench/graph_features.py`.
Workloads 3 and 4 are also given in CPU time of the process ("cpu"), which other processes
competing for the cores inflate far less than wall-clock time, on a shared machine.
Nodes are async in both libraries (`ainvoke`/`astream`, `runner.run`); workload 1 also runs
LangGraph's sync `invoke` and chronos sync nodes. Producers `await asyncio.sleep(0)` every 100
events, as a node awaiting a model does, in both libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, TypedDict

from graph_features import durability_costs, fan_out_costs, interrupt_costs
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from chronos import graph, store
from chronos.graph import _events, emit

NODES = 50
YIELD_EVERY = 100


class LGState(TypedDict, total=False):
    x: int


def median_of(repeat: int, measure: Callable[[], Awaitable[float]]) -> float:
    async def all_runs() -> list[float]:
        results = []
        for _ in range(repeat):
            gc.collect()
            results.append(await measure())
        return results

    return statistics.median(asyncio.run(all_runs()))


# --- graphs -----------------------------------------------------------------------------------


async def chronos_async_node(state: dict[str, Any]) -> dict[str, Any]:
    return {"x": 1}


def chronos_sync_node(state: dict[str, Any]) -> dict[str, Any]:
    return {"x": 1}


async def chronos_streaming_node(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", 1)
    emit("token", "t")
    return {"x": 1}


def chronos_chain(node: Any, *, inline: bool = False) -> graph.CompiledGraph:
    g = graph.StateGraph("chain")
    ids = [f"n{i}" for i in range(NODES)]
    for node_id in ids:
        g.add_node(node_id, node, inline=inline)
    g.set_entry_point(ids[0])
    for a, b in itertools.pairwise(ids):
        g.add_edge(a, b)
    return g.set_finish_point(ids[-1]).compile()


async def lg_async_node(state: LGState) -> LGState:
    return {"x": 1}


def lg_sync_node(state: LGState) -> LGState:
    return {"x": 1}


async def lg_streaming_node(state: LGState) -> LGState:
    writer = get_stream_writer()
    writer(1)
    writer("t")
    return {"x": 1}


def lg_chain(node: Any, checkpointer: Any = None) -> Any:
    g = StateGraph(LGState)
    ids = [f"n{i}" for i in range(NODES)]
    for node_id in ids:
        g.add_node(node_id, node)
    g.add_edge(START, ids[0])
    for a, b in itertools.pairwise(ids):
        g.add_edge(a, b)
    g.add_edge(ids[-1], END)
    return g.compile(checkpointer=checkpointer)


def lg_config(i: int) -> Any:
    return {"configurable": {"thread_id": f"t{i}"}, "recursion_limit": NODES + 10}


# --- 1. per-step cost -------------------------------------------------------------------------


def step_costs(runs: int, repeat: int, workdir: str) -> dict[str, float]:
    steps = runs * NODES
    out: dict[str, float] = {}
    counter = iter(range(10**9))

    def chronos_case(node: Any, inline: bool, make_store: Callable[[], Any]) -> float:
        async def measure() -> float:
            checkpoints = make_store()
            runner = graph.Runner(chronos_chain(node, inline=inline), checkpoints)
            await runner.run("warm", {"x": 0})
            start = time.perf_counter()
            for i in range(runs):
                await runner.run(f"s{next(counter)}-{i}", {"x": 0})
            elapsed = time.perf_counter() - start
            if checkpoints is not None:
                await checkpoints.aclose()
            return elapsed / steps * 1e6

        return median_of(repeat, measure)

    def chronos_sqlite() -> store.SQLiteStore:
        return store.SQLiteStore(os.path.join(workdir, f"chronos-{next(counter)}.db"))

    for label, make in [("none", lambda: None), ("memory", store.MemoryStore),
                        ("sqlite", chronos_sqlite)]:
        out[f"chronos async {label}"] = chronos_case(chronos_async_node, False, make)
        out[f"chronos sync-inline {label}"] = chronos_case(chronos_sync_node, True, make)
    out["chronos sync-thread none"] = chronos_case(chronos_sync_node, False, lambda: None)
    out["chronos async sqlite-fsync"] = chronos_case(  # synchronous=FULL, as LangGraph's saver
        chronos_async_node, False,
        lambda: store.SQLiteStore(os.path.join(workdir, f"full-{next(counter)}.db"),
                                  synchronous="FULL"),
    )

    def lg_sqlite_conn() -> sqlite3.Connection:
        return sqlite3.connect(os.path.join(workdir, f"lg-{next(counter)}.db"),
                               check_same_thread=False)

    for label in ("none", "memory", "sqlite"):
        async def measure_async(label: str = label) -> float:
            if label == "sqlite":
                async with AsyncSqliteSaver.from_conn_string(
                    os.path.join(workdir, f"lg-async-{next(counter)}.db")
                ) as saver:
                    return await lg_async_run(saver)
            return await lg_async_run(InMemorySaver() if label == "memory" else None)

        async def lg_async_run(saver: Any) -> float:
            app = lg_chain(lg_async_node, saver)
            await app.ainvoke({"x": 0}, lg_config(-1))
            start = time.perf_counter()
            for _ in range(runs):
                await app.ainvoke({"x": 0}, lg_config(next(counter)))
            return (time.perf_counter() - start) / steps * 1e6

        out[f"langgraph async {label}"] = median_of(repeat, measure_async)

        async def measure_sync(label: str = label) -> float:
            saver: Any = None
            if label == "memory":
                saver = InMemorySaver()
            elif label == "sqlite":
                saver = SqliteSaver(lg_sqlite_conn())
            app = lg_chain(lg_sync_node, saver)
            app.invoke({"x": 0}, lg_config(-1))
            start = time.perf_counter()
            for _ in range(runs):
                app.invoke({"x": 0}, lg_config(next(counter)))
            return (time.perf_counter() - start) / steps * 1e6

        out[f"langgraph sync {label}"] = median_of(repeat, measure_sync)
    return out


# --- 2. events per second per stream mode -----------------------------------------------------


def stream_rates(runs: int, repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    modes = ["values", "updates", "messages", "custom", "debug"]
    for mode in modes:
        async def measure_chronos(mode: Any = mode) -> float:
            runner = graph.Runner(chronos_chain(chronos_streaming_node))
            received = 0
            start = time.perf_counter()
            for i in range(runs):

                async def consume(events: graph.EventStream) -> int:
                    return sum([1 async for _ in events])

                received += (await asyncio.gather(consume(runner.stream(mode)),
                                                  runner.run(f"s{i}", {"x": 0})))[0]
            return received / (time.perf_counter() - start)

        out[f"chronos {mode}"] = median_of(repeat, measure_chronos)
        if mode == "messages":
            continue  # LangGraph's messages mode only carries chat-model tokens

        async def measure_lg(mode: str = mode) -> float:
            app = lg_chain(lg_streaming_node)
            received = 0
            start = time.perf_counter()
            for i in range(runs):
                async for _ in app.astream({"x": 0}, lg_config(i), stream_mode=mode):
                    received += 1
            return received / (time.perf_counter() - start)

        out[f"langgraph {mode}"] = median_of(repeat, measure_lg)
    return out


# --- 3. 100,000 custom events from one node ---------------------------------------------------


def custom_burst(count: int, repeat: int) -> dict[str, float]:
    async def chronos_node(state: dict[str, Any]) -> None:
        for i in range(count):
            emit("progress", i)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def lg_node(state: LGState) -> LGState:
        writer = get_stream_writer()
        for i in range(count):
            writer(i)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return {}

    firsts: dict[str, list[float]] = {"chronos": [], "langgraph": []}
    cpu_rates: dict[str, list[float]] = {"chronos": [], "langgraph": []}

    async def measure_chronos() -> float:
        g = graph.StateGraph("burst").add_node("emit", chronos_node)
        runner = graph.Runner(g.set_entry_point("emit").set_finish_point("emit").compile())
        events = runner.stream("custom")
        received = 0
        first = 0.0
        cpu = time.process_time()
        start = time.perf_counter()

        async def consume() -> None:
            nonlocal received, first
            async for evt in events:
                if evt.type == "custom":
                    if not received:
                        first = time.perf_counter()
                    received += 1

        await asyncio.gather(consume(), runner.run("s", {}))
        assert received == count, received
        firsts["chronos"].append(first - start)
        cpu_rates["chronos"].append(received / (time.process_time() - cpu))
        return received / (time.perf_counter() - start)

    async def measure_lg() -> float:
        g = StateGraph(LGState)
        g.add_node("emit", lg_node)
        g.add_edge(START, "emit")
        g.add_edge("emit", END)
        app = g.compile()
        received = 0
        first = 0.0
        cpu = time.process_time()
        start = time.perf_counter()
        async for _ in app.astream({"x": 0}, stream_mode="custom"):
            if not received:
                first = time.perf_counter()
            received += 1
        assert received == count, received
        firsts["langgraph"].append(first - start)
        cpu_rates["langgraph"].append(received / (time.process_time() - cpu))
        return received / (time.perf_counter() - start)

    out = {"chronos events/s": median_of(repeat, measure_chronos),
           "langgraph events/s": median_of(repeat, measure_lg)}
    for lib, values in firsts.items():
        out[f"{lib} first event ms"] = statistics.median(values) * 1e3
    for lib, values in cpu_rates.items():
        out[f"{lib} events/cpu-s"] = statistics.median(values)
    return out


# --- 4. 20,000 tokens from one node -----------------------------------------------------------


def token_cost(count: int, repeat: int) -> dict[str, float]:
    def chronos_node(with_tokens: bool) -> Any:
        async def node(state: dict[str, Any]) -> None:
            for i in range(count):
                if with_tokens:
                    emit("token", "tok")
                if i % YIELD_EVERY == 0:
                    await asyncio.sleep(0)

        return node

    def lg_node(with_tokens: bool) -> Any:
        async def node(state: LGState) -> LGState:
            writer = get_stream_writer()
            for i in range(count):
                if with_tokens:
                    writer("tok")
                if i % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            return {}

        return node

    async def chronos_run(with_tokens: bool) -> tuple[float, float]:
        g = graph.StateGraph("tokens").add_node("chat", chronos_node(with_tokens))
        runner = graph.Runner(g.set_entry_point("chat").set_finish_point("chat").compile())
        events = runner.stream("messages")
        cpu = time.process_time()
        start = time.perf_counter()

        async def consume() -> int:
            return sum([1 async for _ in events])

        received = (await asyncio.gather(consume(), runner.run("s", {})))[0]
        assert received == (count if with_tokens else 0) + 1, received
        return time.perf_counter() - start, time.process_time() - cpu

    async def lg_run(with_tokens: bool) -> tuple[float, float]:
        g = StateGraph(LGState)
        g.add_node("chat", lg_node(with_tokens))
        g.add_edge(START, "chat")
        g.add_edge("chat", END)
        app = g.compile()
        cpu = time.process_time()
        start = time.perf_counter()
        received = sum([1 async for _ in app.astream({"x": 0}, stream_mode="custom")])
        assert received == (count if with_tokens else 0), received
        return time.perf_counter() - start, time.process_time() - cpu

    out = {}
    for lib, run in [("chronos", chronos_run), ("langgraph", lg_run)]:
        cpu_costs: list[float] = []

        async def measure(run: Any = run, cpu_costs: list[float] = cpu_costs) -> float:
            with_tokens: tuple[float, float] = await run(True)
            without: tuple[float, float] = await run(False)
            cpu_costs.append((with_tokens[1] - without[1]) / count * 1e6)
            return (with_tokens[0] - without[0]) / count * 1e6

        out[f"{lib} us/token"] = median_of(repeat, measure)
        out[f"{lib} cpu-us/token"] = statistics.median(cpu_costs)
    return out


def _build() -> str:
    return "interpreted" if _events.__file__.endswith(".py") else "event path compiled"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="chain runs per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    runs, repeat = (10, 1) if args.quick else (args.runs, args.repeat)
    customs, tokens = (2_000, 2_000) if args.quick else (100_000, 20_000)

    print(f"python {platform.python_version()} · langgraph {version('langgraph')} · "
          f"langgraph-checkpoint-sqlite {version('langgraph-checkpoint-sqlite')} · "
          f"chronos {version('chronos-stream')} ({_build()}) · {platform.machine()} "
          f"{os.cpu_count()} cpu · {platform.platform()}")
    print(f"chain: {NODES} nodes x {runs} runs; median of {repeat}\n")
    with tempfile.TemporaryDirectory() as workdir:
        sections = [
            ("1. per node step, us (lower is better)", step_costs(runs, repeat, workdir)),
            ("2. events/s consumed per stream mode", stream_rates(max(runs // 4, 1), repeat)),
            (f"3. {customs:,} custom events from one node", custom_burst(customs, repeat)),
            (f"4. {tokens:,} tokens from one node", token_cost(tokens, repeat)),
            ("5. interrupt + resume round trip, us", interrupt_costs(
                max(runs // 2, 1), repeat, workdir, median_of)),
            ("6. Send fan-out to 100 branches, ms per run", fan_out_costs(
                max(runs // 10, 1), repeat, median_of)),
            ("7. durability modes, SQLite, us per node step", durability_costs(
                max(runs // 20, 1), repeat, workdir, NODES, median_of)),
        ]
    for title, figures in sections:
        print(title)
        for name, value in figures.items():
            print(f"  {name:<34} {value:>14,.2f}")
        print()
    steps = sections[0][1]
    for label in ("none", "memory", "sqlite"):
        ours = steps[f"chronos async {label}"]
        print(f"per-step ratio, {label}: langgraph async / chronos async = "
              f"{steps[f'langgraph async {label}'] / ours:.1f}x, "
              f"langgraph sync / chronos async = {steps[f'langgraph sync {label}'] / ours:.1f}x")
    burst = sections[2][1]
    rate = burst["chronos events/s"] / burst["langgraph events/s"]
    cpu_rate = burst["chronos events/cpu-s"] / burst["langgraph events/cpu-s"]
    print(f"custom-event rate ratio: {rate:.1f}x (cpu: {cpu_rate:.1f}x)")
    per_token = sections[3][1]
    print(f"per-token cost ratio: langgraph / chronos = "
          f"{per_token['langgraph us/token'] / per_token['chronos us/token']:.1f}x "
          f"(cpu: {per_token['langgraph cpu-us/token'] / per_token['chronos cpu-us/token']:.1f}x)")
    for title, figures in sections[4:]:
        ratios = ", ".join(
            f"{name.removeprefix('chronos ')} "
            f"{figures[name.replace('chronos', 'langgraph')] / value:.1f}x"
            for name, value in figures.items() if name.startswith("chronos"))
        print(f"{title.split(',')[0]}: langgraph / chronos = {ratios}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

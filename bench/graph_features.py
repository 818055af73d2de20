"""Workloads 5-7 of `graph_vs_langgraph.py`: interrupts, `Send` fan-out, durability modes.

Each is the same graph in both libraries, timed in one process, one after the other:
  5. interrupt + resume round trip: a run whose one node asks a question, then the resume
     that answers it (`interrupt()` / `Command(resume=...)` in both), per round trip;
  6. `Send` fan-out: a router sends 100 items to one node, whose updates an append reducer
     merges, then a last node sums them; per run;
  7. durability: the 50-node chain of workload 1 on SQLite, per node step, with each of
     LangGraph's three modes ("sync", "async", "exit") in both libraries.
"""

from __future__ import annotations

import itertools
import operator
import os
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from chronos import graph, store

__all__ = ["durability_costs", "fan_out_costs", "interrupt_costs"]

FAN_OUT = 100
_counter = itertools.count()


class _AskState(TypedDict, total=False):
    answer: str


class _FanState(TypedDict, total=False):
    items: list[int]
    squares: Annotated[list[int], operator.add]
    total: int


class _ChainState(TypedDict, total=False):
    x: int


# --- 5. interrupt + resume --------------------------------------------------------------------


async def _chronos_ask(state: dict[str, Any]) -> dict[str, Any]:
    return {"answer": graph.interrupt("publish?")}


async def _lg_ask(state: _AskState) -> _AskState:
    return {"answer": interrupt("publish?")}


def interrupt_costs(
    runs: int, repeat: int, workdir: str, median_of: Callable[..., float]
) -> dict[str, float]:
    """Microseconds per run-then-resume, per store."""
    out: dict[str, float] = {}
    compiled = (graph.StateGraph("ask").add_node("ask", _chronos_ask)
                .set_entry_point("ask").set_finish_point("ask").compile())

    def chronos_case(make: Callable[[], Any]) -> Callable[[], Any]:
        async def measure() -> float:
            checkpoints = make()
            runner = graph.Runner(compiled, checkpoints)
            start = time.perf_counter()
            for _ in range(runs):
                session = f"s{next(_counter)}"
                await runner.run(session, {})
                done = await runner.resume(session, resume="yes")
                assert done.state["answer"] == "yes"
            await checkpoints.aclose()
            return (time.perf_counter() - start) / runs * 1e6

        return measure

    def lg_graph(saver: Any) -> Any:
        g = StateGraph(_AskState)
        g.add_node("ask", _lg_ask)
        g.add_edge(START, "ask")
        g.add_edge("ask", END)
        return g.compile(checkpointer=saver)

    async def lg_runs(app: Any) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            config = {"configurable": {"thread_id": f"t{next(_counter)}"}}
            await app.ainvoke({}, config)
            done = await app.ainvoke(Command(resume="yes"), config)
            assert done["answer"] == "yes"
        return (time.perf_counter() - start) / runs * 1e6

    async def lg_memory() -> float:
        return await lg_runs(lg_graph(InMemorySaver()))

    async def lg_sqlite() -> float:
        path = os.path.join(workdir, f"lg-ask-{next(_counter)}.db")
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            return await lg_runs(lg_graph(saver))

    out["chronos memory"] = median_of(repeat, chronos_case(store.MemoryStore))
    out["langgraph memory"] = median_of(repeat, lg_memory)
    out["chronos sqlite"] = median_of(repeat, chronos_case(
        lambda: store.SQLiteStore(os.path.join(workdir, f"ask-{next(_counter)}.db"))))
    out["langgraph sqlite"] = median_of(repeat, lg_sqlite)
    return out


# --- 6. Send fan-out --------------------------------------------------------------------------


async def _chronos_square(arg: dict[str, Any]) -> dict[str, Any]:
    return {"squares": [arg["item"] ** 2]}


async def _lg_square(arg: dict[str, Any]) -> _FanState:
    return {"squares": [arg["item"] ** 2]}


def fan_out_costs(runs: int, repeat: int, median_of: Callable[..., float]) -> dict[str, float]:
    """Milliseconds per run of a 100-branch `Send` fan-out, without and with a memory store."""
    out: dict[str, float] = {}
    items = list(range(FAN_OUT))
    expected = sum(i * i for i in items)
    compiled = (
        graph.StateGraph("fan", reducers={"squares": graph.append})
        .add_node("split", lambda s: None, inline=True).add_node("square", _chronos_square)
        .add_node("total", lambda s: {"total": sum(s["squares"])}, inline=True)
        .set_entry_point("split")
        .add_conditional_edges("split", lambda s: [graph.Send("square", {"item": i})
                                                   for i in s["items"]])
        .add_edge("square", "total").set_finish_point("total").compile()
    )

    def lg_graph(saver: Any) -> Any:
        g = StateGraph(_FanState)
        g.add_node("split", lambda s: {})
        g.add_node("square", _lg_square)
        g.add_node("total", lambda s: {"total": sum(s["squares"])})
        g.add_edge(START, "split")
        g.add_conditional_edges("split", lambda s: [Send("square", {"item": i})
                                                    for i in s["items"]])
        g.add_edge("square", "total")
        g.add_edge("total", END)
        return g.compile(checkpointer=saver)

    for label, make_chronos, make_lg in [("none", lambda: None, lambda: None),
                                         ("memory", store.MemoryStore, InMemorySaver)]:
        async def measure_chronos(make: Callable[[], Any] = make_chronos) -> float:
            runner = graph.Runner(compiled, make())
            start = time.perf_counter()
            for _ in range(runs):
                done = await runner.run(f"f{next(_counter)}", {"items": items})
                assert done.state["total"] == expected
            return (time.perf_counter() - start) / runs * 1e3

        async def measure_lg(make: Callable[[], Any] = make_lg) -> float:
            app = lg_graph(make())
            start = time.perf_counter()
            for _ in range(runs):
                config = {"configurable": {"thread_id": f"f{next(_counter)}"}}
                done = await app.ainvoke({"items": items, "squares": []}, config)
                assert done["total"] == expected
            return (time.perf_counter() - start) / runs * 1e3

        out[f"chronos {label}"] = median_of(repeat, measure_chronos)
        out[f"langgraph {label}"] = median_of(repeat, measure_lg)
    return out


# --- 7. durability modes ----------------------------------------------------------------------


async def _chronos_step(state: dict[str, Any]) -> dict[str, Any]:
    return {"x": 1}


async def _lg_step(state: _ChainState) -> _ChainState:
    return {"x": 1}


def durability_costs(
    runs: int, repeat: int, workdir: str, nodes: int, median_of: Callable[..., float]
) -> dict[str, float]:
    """Microseconds per node step of a `nodes`-long chain on SQLite, per durability mode."""
    out: dict[str, float] = {}
    ids = [f"n{i}" for i in range(nodes)]
    builder = graph.StateGraph("chain")
    for node_id in ids:
        builder.add_node(node_id, _chronos_step)
    for a, b in itertools.pairwise(ids):
        builder.add_edge(a, b)
    compiled = builder.set_entry_point(ids[0]).set_finish_point(ids[-1]).compile()

    lg = StateGraph(_ChainState)
    for node_id in ids:
        lg.add_node(node_id, _lg_step)
    lg.add_edge(START, ids[0])
    for a, b in itertools.pairwise(ids):
        lg.add_edge(a, b)
    lg.add_edge(ids[-1], END)
    steps = runs * nodes

    for mode in ("sync", "async", "exit"):
        async def measure_chronos(mode: Any = mode) -> float:
            path = os.path.join(workdir, f"durable-{next(_counter)}.db")
            async with store.SQLiteStore(path) as checkpoints:
                runner = graph.Runner(compiled, checkpoints, durability=mode)
                await runner.run("warm", {"x": 0})
                start = time.perf_counter()
                for _ in range(runs):
                    await runner.run(f"d{next(_counter)}", {"x": 0})
                return (time.perf_counter() - start) / steps * 1e6

        async def measure_lg(mode: Any = mode) -> float:
            path = os.path.join(workdir, f"lg-durable-{next(_counter)}.db")
            async with AsyncSqliteSaver.from_conn_string(path) as saver:
                app = lg.compile(checkpointer=saver)
                limit = {"recursion_limit": nodes + 10}
                await app.ainvoke({"x": 0}, {"configurable": {"thread_id": "warm"}, **limit},
                                  durability=mode)
                start = time.perf_counter()
                for _ in range(runs):
                    config = {"configurable": {"thread_id": f"d{next(_counter)}"}, **limit}
                    await app.ainvoke({"x": 0}, config, durability=mode)
                return (time.perf_counter() - start) / steps * 1e6

        out[f"chronos {mode}"] = median_of(repeat, measure_chronos)
        out[f"langgraph {mode}"] = median_of(repeat, measure_lg)
    return out

"""What a checkpoint's safety checks cost: the state round-trip check and the session lease.

    .venv/bin/python bench/checkpoint_checks.py
    PYTHONPATH=<checkout of the code before>/src .venv/bin/python bench/checkpoint_checks.py

Prints, each the best of `--repeat` measurements: microseconds to encode a small and a large
state (`encode_state`, which checks that the state comes back equal, beside `orjson.dumps`
alone), and microseconds per node step of a 50-node chain of trivial async nodes run `--runs`
times with a MemoryStore and with a SQLite file (one checkpoint per step, one lease per run).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
import timeit
from typing import Any

import orjson

from chronos import graph, store
from chronos.store._protocol import encode_state

NODES = 50
SMALL = {"query": "hi", "n": 3, "done": False, "log": ["a", "b"]}
LARGE = {
    "messages": [{"role": "user", "content": "x" * 200, "n": i, "score": 0.5} for i in range(200)],
    "query": "hello",
    "meta": {"k": list(range(100))},
}


def chain() -> graph.CompiledGraph:
    async def step(state: dict[str, Any]) -> dict[str, Any]:
        return {"x": state.get("x", 0) + 1}

    g = graph.StateGraph("chain")
    for i in range(NODES):
        g.add_node(f"n{i}", step)
    g.set_entry_point("n0").set_finish_point(f"n{NODES - 1}")
    for i in range(NODES - 1):
        g.add_edge(f"n{i}", f"n{i + 1}")
    return g.compile()


async def per_step(checkpoints: store.CheckpointStore, runs: int) -> float:
    runner = graph.Runner(chain(), checkpoints)
    started = time.perf_counter()
    for i in range(runs):
        await runner.run(f"s{i}", {"x": 0})
    return (time.perf_counter() - started) / (runs * NODES) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, state, number in (("small", SMALL, 20_000), ("large", LARGE, 1_000)):
        size = len(orjson.dumps(state))
        for label, encode in (("orjson.dumps", orjson.dumps), ("encode_state", encode_state)):
            best = min(timeit.repeat(functools.partial(encode, state), number=number,
                                     repeat=args.repeat))
            print(f"{name} state ({size} bytes), {label}: {best / number * 1e6:.2f} us")
    for kind in ("memory", "sqlite"):
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                url = "memory://" if kind == "memory" else f"sqlite:///{folder}/runs.db"

                async def measure(url: str = url) -> float:
                    async with store.from_url(url) as checkpoints:
                        return await per_step(checkpoints, args.runs)

                times.append(asyncio.run(measure()))
        print(f"us per step, {kind} store: {min(times):.2f}")


if __name__ == "__main__":
    main()

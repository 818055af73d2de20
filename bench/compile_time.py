"""How long `StateGraph.compile()` takes on long chains (RELIABILITY.md).

    .venv/bin/python bench/compile_time.py 10000 2000:u      # N nodes; ":u" untargeted routers

A chain of N inline nodes joined by static edges, or by conditional edges whose routers have
no target list (so validation must assume they may lead anywhere).
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any

from chronos import graph


def step(state: dict[str, Any]) -> None:
    return None


def route_to(target: str) -> graph.Router:
    return lambda state: target


def chain(length: int, *, untargeted: bool) -> graph.StateGraph:
    ids = [f"n{i}" for i in range(length)]
    g = graph.StateGraph("long")
    for node_id in ids:
        g.add_node(node_id, step, inline=True)
    g.set_entry_point(ids[0]).set_finish_point(ids[-1])
    for source, target in itertools.pairwise(ids):
        if untargeted:
            g.add_conditional_edge(source, route_to(target))
        else:
            g.add_edge(source, target)
    return g


def main() -> None:
    for spec in sys.argv[1:]:
        length, untargeted = int(spec.split(":")[0]), spec.endswith(":u")
        g = chain(length, untargeted=untargeted)
        started = time.perf_counter()
        g.compile()
        kind = "untargeted conditional" if untargeted else "static"
        print(f"{length} nodes, {kind} edges: compile {time.perf_counter() - started:.3f} s",
              flush=True)


if __name__ == "__main__":
    main()

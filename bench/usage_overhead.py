"""What counting usage costs the hot paths: the W1 node step and a `stream_chat` token.

    .venv/bin/python bench/usage_overhead.py --base BASE_SRC    # A/B in one session

Runs the same workloads on chronos from this tree and from `BASE_SRC` (a `src/` folder of
another commit, e.g. `git archive main src | tar -x -C /tmp/base`), alternating between the
two in fresh processes (ABBA order), and prints medians and the head/base ratio:
  1. W1: a chain of 50 trivial async nodes (as in `graph_vs_langgraph.py`), no store and an
     in-memory store: microseconds per node step;
  2. one node streaming 20,000 chunks through `graph.stream_chat` from an in-process provider
     (the last chunk carries the usage), a `messages` reader consuming: microseconds per token.
Both are CPU time of the process, which other processes on a shared machine inflate far less
than wall-clock time; each process takes the median of 5 measurements, and the figures are
the medians over the processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

_WORKLOAD = r'''
import asyncio, gc, itertools, json, sys, time
from chronos import graph, model, store

NODES, RUNS, TOKENS = 50, int(sys.argv[1]), int(sys.argv[2])

async def step(state):
    return {"x": 1}

def chain():
    g = graph.StateGraph("chain")
    ids = [f"n{i}" for i in range(NODES)]
    for i in ids:
        g.add_node(i, step)
    g.set_entry_point(ids[0])
    for a, b in itertools.pairwise(ids):
        g.add_edge(a, b)
    return g.set_finish_point(ids[-1]).compile()

class Chunks:
    def __init__(self, chunks):
        self._chunks = iter(chunks)
    async def __aenter__(self):
        return self
    async def __aexit__(self, *exc):
        return None
    def __aiter__(self):
        return self
    async def __anext__(self):
        for chunk in self._chunks:
            return chunk
        raise StopAsyncIteration

class Fake:
    name, model = "fake", "fake-1"
    def __init__(self, n):
        tok = model.ChatResponse(content="tok", delta=True)
        last = model.ChatResponse(delta=True, usage=model.Usage(input_tokens=10, output_tokens=n))
        self.chunks = [tok] * n + [last]
    def stream_chat(self, req):
        return Chunks(self.chunks)

REQ = model.ChatRequest(messages=[model.Message(role="user", content="hi")])

async def per_step(with_store):
    compiled = chain()
    runner = graph.Runner(compiled, store.MemoryStore() if with_store else None)
    gc.collect()
    t = time.process_time()
    for i in range(RUNS):
        await runner.run(f"s{i}", {"x": 0})
    return (time.process_time() - t) / (RUNS * NODES) * 1e6

async def per_token():
    provider = Fake(TOKENS)
    async def chat(state):
        await graph.stream_chat(provider, REQ)
        return {}
    compiled = (graph.StateGraph("t").add_node("chat", chat).set_entry_point("chat")
                .set_finish_point("chat").compile())
    runner = graph.Runner(compiled)
    events = runner.stream("messages")
    async def read():
        return len([e async for e in events])
    gc.collect()
    t = time.process_time()
    await asyncio.gather(read(), runner.run("s", {}))
    return (time.process_time() - t) / TOKENS * 1e6

async def median(measure, *args):
    return sorted([await measure(*args) for _ in range(5)])[2]

async def main():
    out = {"step none": await median(per_step, False),
           "step memory": await median(per_step, True), "token": await median(per_token)}
    print(json.dumps(out))

asyncio.run(main())
'''


def _measure(src: str, runs: int, tokens: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src, "CHRONOS_INTERPRETED": "1"}
    done = subprocess.run([sys.executable, "-c", _WORKLOAD, str(runs), str(tokens)], env=env,
                          capture_output=True, text=True, check=True)
    import json
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the src/ folder to compare against")
    parser.add_argument("--rounds", type=int, default=9, help="processes per tree")
    parser.add_argument("--runs", type=int, default=50, help="chain runs per measurement")
    parser.add_argument("--tokens", type=int, default=20_000)
    args = parser.parse_args()
    head = str(Path(__file__).resolve().parents[1] / "src")
    results: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    trees = [("base", args.base), ("head", head)]
    for round_no in range(args.rounds):
        # ABBA: neither tree always runs first, after the other has warmed the machine.
        for label, src in trees if round_no % 2 == 0 else trees[::-1]:
            results[label].append(_measure(src, args.runs, args.tokens))
    print(f"python {sys.version.split()[0]} · {os.cpu_count()} cpu · load "
          f"{os.getloadavg()[0]:.1f} · {args.rounds} rounds, alternating; CPU us, medians")
    for key in results["base"][0]:
        base = statistics.median(r[key] for r in results["base"])
        now = statistics.median(r[key] for r in results["head"])
        print(f"  {key:<12} base {base:8.3f}   head {now:8.3f}   head/base {now / base:.3f}")


if __name__ == "__main__":
    main()

"""Two `chronos serve` checkouts side by side: runs/s, server CPU per run, first-event latency.

    .venv/bin/python bench/serve_ab.py /work/main .          # before (main) and after (here)
    .venv/bin/python bench/serve_ab.py /work/main . --rounds 5 --duration 5 --users 1 50

Each argument is a checkout with its own `.venv` (`chronos serve tests.server.graphs:agent`
from it, SQLite store in a temporary directory, in-process broker: the defaults). Both
servers run at once; the rounds alternate between them, so both see the same machine load.
Per round and server: `runs.wait` loops (official `langgraph-sdk`, a new thread per run, as
`bench/serve_vs_langgraph.py` does, timed from a steady start: see its `wait_loops`) for
`--duration` seconds with each user count, giving runs/s, the server process's CPU time
(user + system, from /proc) per run, which depends little on the load, and this process's
own (the SDK clients', their executor threads included), which with the server's says what
bounds the rate on two cores; then
`--latency-runs` `runs.stream` calls one after another (modes `custom` +
`messages-tuple`), timed to the first event the SDK yields, and 50 users streaming
two runs each at once, with the server's CPU time per streamed run, then the same 50 users
each in a process of its own; the latencies with each `--client-gc` mode given (`freeze`:
this process's start-up objects out of its garbage collector's reach, see
`bench/serve_vs_langgraph.py`; `default`: as a client has them). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_vs_langgraph import (
    CLIENT_GC,
    client_gc,
    first_event_latency,
    first_event_latency_per_process,
    wait_loops,
)
from tests.server.conformance_servers import ServedAPI, _serve


@contextlib.contextmanager
def checkout_server(checkout: Path, pythonpath: str = "",
                    env: Mapping[str, str] | None = None) -> Iterator[ServedAPI]:
    """`chronos serve tests.server.graphs:agent` from `checkout`'s own `.venv` and source;
    `pythonpath` goes before the checkout on the server's `PYTHONPATH`."""
    argv = [str(checkout / ".venv" / "bin" / "chronos"), "serve", "tests.server.graphs:agent"]
    path = os.pathsep.join(filter(None, (pythonpath, str(checkout))))
    with _serve("chronos", argv, {**(env or {}), "PYTHONPATH": path}) as served:
        yield served


async def _waits(served: ServedAPI, users: list[int], duration: float) -> dict[str, float]:
    found: dict[str, float] = {}
    for count in users:
        loops = await wait_loops(served.url, count, duration, served.pid)
        runs = max(loops.runs, 1)
        found[f"runs/s, {count} users"] = loops.rate
        found[f"server CPU ms per run, {count} users"] = 1000 * (loops.server_cpu or 0.0) / runs
        found[f"client CPU ms per run, {count} users"] = 1000 * loops.client_cpu / runs
    return found


def _first_events(served: ServedAPI, latency_runs: int, mode: str) -> dict[str, float]:
    found: dict[str, float] = {}
    client_gc(mode)
    latency = asyncio.run(first_event_latency(served.url, 1, latency_runs))
    found[f"first event p50 ms, 1 user, gc {mode}"] = latency["first p50 ms"]
    found[f"first event p99 ms, 1 user, gc {mode}"] = latency["first p99 ms"]
    client_gc(mode)
    latency = asyncio.run(first_event_latency(served.url, 50, 2, served.pid))
    found[f"first event p50 ms, 50 users, gc {mode}"] = latency["first p50 ms"]
    found[f"first event p99 ms, 50 users, gc {mode}"] = latency["first p99 ms"]
    found[f"server CPU ms per streamed run, 50 users, gc {mode}"] = \
        latency["server CPU ms per stream"]
    client_gc(mode)
    latency = first_event_latency_per_process(served.url, 50, 2)
    found[f"first event p50 ms, 50 procs, gc {mode}"] = latency["first p50 ms"]
    found[f"first event p99 ms, 50 procs, gc {mode}"] = latency["first p99 ms"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs=2, type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--client-gc", nargs="+", choices=CLIENT_GC, default=["freeze"],
                        help="the clients' garbage collector, as in serve_vs_langgraph.py")
    args = parser.parse_args()
    names = [str(c) for c in args.checkouts]
    results: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    with checkout_server(args.checkouts[0].resolve()) as first, \
            checkout_server(args.checkouts[1].resolve()) as second:
        servers = dict(zip(names, (first, second), strict=True))
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                client_gc(args.client_gc[0])
                measured = asyncio.run(_waits(servers[name], args.users, args.duration))
                for mode in args.client_gc:
                    measured.update(_first_events(servers[name], args.latency_runs, mode))
                for key, value in measured.items():
                    results[name].setdefault(key, []).append(value)
            print(f"round {round_ + 1} done; load {os.getloadavg()[0]:.2f}", flush=True)
    header = f"median of {args.rounds} rounds"
    print(f"{header:52} " + " ".join(f"{n:>16}" for n in names))
    for key in results[names[0]]:
        values = [statistics.median(results[n][key]) for n in names]
        print(f"{key:52} " + " ".join(f"{v:16.2f}" for v in values))


if __name__ == "__main__":
    main()

"""The garbage collector's stops in `chronos serve` processes while 50 users stream.

    .venv/bin/python bench/serve_gc_pauses.py /work/main .            # 3 rounds of 50 x 4
    .venv/bin/python bench/serve_gc_pauses.py /work/main . --rounds 6 --per-user 4

Each argument is a checkout with its own `.venv`: its `chronos serve tests.server.graphs:agent`
(SQLite store, in-process broker: the defaults) runs with a probe (a `sitecustomize` on its
`PYTHONPATH`) that times every collection by generation, in thread CPU and wall time, counting
only those after the start-up freeze (`gc.get_freeze_count()` > 0), and appends them to a
file. Both servers run at once; each round, alternating between them, 50 SDK users in this
process stream `--per-user` runs each (modes `custom` + `messages-tuple`, 200 tokens:
`bench/serve_vs_langgraph.py`'s `first_event_latency`), with the server's CPU per run from
/proc. Printed per checkout: the full collections (CPU ms each), the younger ones' counts and
CPU, the server's CPU per streamed run, its resident memory at the end and the first-event
p50 / p99 per round. Wall-clock
figures are the machine's as much as the server's: read them with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_ab import checkout_server
from bench.serve_vs_langgraph import first_event_latency

_PROBE = '''
import gc, os, time
_OUT = os.environ["CHRONOS_GC_PROBE"]
_started = [0.0, 0.0]
_frozen = [False]  # `gc.get_freeze_count()` walks the frozen objects: asked until it is not 0

def _probe(phase, info):
    if phase == "start":
        _started[:] = time.perf_counter(), time.thread_time()
        return
    cpu, wall = time.thread_time() - _started[1], time.perf_counter() - _started[0]
    _frozen[0] = _frozen[0] or gc.get_freeze_count() > 0
    if _frozen[0]:
        with open(_OUT, "a") as out:
            out.write("%d %.3f %.3f\\n" % (info["generation"], 1000 * cpu, 1000 * wall))

gc.callbacks.append(_probe)
'''


def _collections(path: Path) -> dict[int, list[tuple[float, float]]]:
    found: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    if path.exists():
        for line in path.read_text().splitlines():
            generation, cpu, wall = line.split()
            found[int(generation)].append((float(cpu), float(wall)))
    return found


def _resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", type=lambda p: Path(p).resolve())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-user", type=int, default=4)
    args = parser.parse_args()
    users = 50
    with tempfile.TemporaryDirectory(prefix="chronos-gc-") as workdir, \
            contextlib.ExitStack() as stack:
        (Path(workdir) / "sitecustomize.py").write_text(_PROBE)
        served, files = [], []
        for n, checkout in enumerate(args.checkouts):
            files.append(Path(workdir) / f"gc-{n}.txt")
            served.append(stack.enter_context(checkout_server(
                checkout, workdir, {"CHRONOS_GC_PROBE": str(files[-1])})))
        for server in served:  # warm: the clients connect, the server's first runs
            asyncio.run(first_event_latency(server.url, users, 1))
        rows: dict[int, list[str]] = {n: [] for n in range(len(served))}
        cpu: dict[int, list[float]] = {n: [] for n in range(len(served))}
        for _ in range(args.rounds):
            for n, server in enumerate(served):
                latency = asyncio.run(first_event_latency(server.url, users, args.per_user,
                                                          server.pid))
                cpu[n].append(latency["server CPU ms per stream"])
                rows[n].append(f"{latency['first p50 ms']:.1f} / {latency['first p99 ms']:.1f}"
                               f" (load {os.getloadavg()[0]:.1f})")
        resident = [_resident_mib(server.pid) for server in served]
        for n, checkout in enumerate(args.checkouts):
            found = _collections(files[n])
            full = ", ".join(f"{c:.1f}" for c, _ in found[2]) or "none"
            print(f"{checkout}: {args.rounds * users * args.per_user} streamed runs")
            print(f"  full collections, CPU ms each: {full}")
            for generation in (0, 1):
                spent = [c for c, _ in found[generation]]
                print(f"  generation {generation}: {len(spent)} collections, "
                      f"{sum(spent):.1f} ms CPU, longest {max(spent, default=0.0):.2f} ms")
            print(f"  server CPU ms per streamed run, median: {statistics.median(cpu[n]):.2f}")
            print(f"  server's resident memory at the end: {resident[n]:.1f} MiB")
            print(f"  first event p50 / p99 ms per round: {'; '.join(rows[n])}")


if __name__ == "__main__":
    main()

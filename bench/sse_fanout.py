"""SSE fan-out: chronos's broker and handler against sse-starlette, on uvicorn, in one run.

    .venv/bin/python bench/sse_fanout.py                      # C = 1, 100, 1000, 10000
    .venv/bin/python bench/sse_fanout.py --clients 1000 --bursts 3 --stacks h11
    .venv/bin/python bench/sse_fanout.py --idle --clients 10000 --servers bare-asgi chronos-asgi

Each runs on uvicorn's pure-Python stack (h11, asyncio) and on httptools + uvloop (the
`uvicorn[standard]` extras, when installed).

For each number of clients C and each server, a fresh server process (`sse_servers.py`) and
one or two load-generator processes (`sse_loadgen.py`, raw asyncio sockets) on 127.0.0.1:

- idle: C streams open, nothing published: server RSS over the empty server, per subscriber
  (`--idle`: only this, for any server in `sse_servers.APPS`, the bare floors included);
- burst: the server publishes B events back to back (B = 100,000 / C, within 10..1000); the
  run waits until every client has them all. Delivered events/s = C * B / (last arrival -
  burst start); median over the bursts. Latency is publish to receive, per event;
- paced: R events a second for a few seconds (R = 10,000 / C, within 1..100): latency
  under a steady load rather than a burst.

Lost = expected - received (a chronos client that overflows gets gap markers, counted apart).
CPU seconds of the server and of the load generators say where the time went; "server CPU ms
per burst" (median and min over the bursts) is what one burst costs the server, and "one
burst's p99" (the median over the bursts) is less at the mercy of a single slow burst than the
p99 over all of them, on a shared machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from array import array
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import sse_loadgen
from sse_servers import APPS, STACKS

SERVERS = ["chronos", "sse-starlette"]  # the comparison; `--idle` takes any of `APPS`


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Run:
    """One server process and its load generators."""

    def __init__(self, kind: str, clients: int, stack: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = Path(__file__).parent / "sse_servers.py"
        command = [sys.executable, str(script), kind, str(self.port), stack]
        self.server = subprocess.Popen(command)
        self.http = httpx.Client(base_url=self.url, timeout=300)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.base = self.stats()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.clients = clients
        shares = [clients] if clients < 200 else [clients // 2, clients - clients // 2]
        self.pipes: list[Any] = []
        self.workers: list[multiprocessing.Process] = []
        for share in shares:
            parent, child = multiprocessing.Pipe()
            worker = multiprocessing.Process(
                target=sse_loadgen.run, args=(child, "127.0.0.1", self.port, share)
            )
            worker.start()
            self.pipes.append(parent)
            self.workers.append(worker)
        connected = sum(pipe.recv() for pipe in self.pipes)
        if connected != clients:
            raise RuntimeError(f"only {connected} of {clients} clients connected")
        while self.stats()["subs"] != clients:
            time.sleep(0.05)
        time.sleep(0.5)  # let the server settle before measuring memory
        self.idle = self.stats()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/stats").json()
        return result

    def phase(self, per_client: int, **query: Any) -> dict[str, Any]:
        """Publish as `query` says; wait for `per_client` events on every client."""
        for pipe in self.pipes:
            pipe.send(("reset", None))
        for pipe in self.pipes:
            pipe.recv()
        cpu = self.stats()["cpu"]
        schedule = self.http.post("/publish", params=query).json()
        for pipe in self.pipes:
            pipe.send(("collect", per_client))
        parts = [pipe.recv() for pipe in self.pipes]
        latencies = array("q")
        last: dict[int, int] = {}
        for part in parts:
            latencies.frombytes(part["latencies"])
            for burst, when in part["last_receive"].items():
                last[burst] = max(last.get(burst, 0), when)
        return {
            "starts": schedule["starts"],
            "published": schedule["published"],
            "last": last,
            "count": sum(p["count"] for p in parts),
            "expected": sum(p["expected"] for p in parts),
            "gaps": sum(p["gaps"] for p in parts),
            "latencies": latencies,
            "server_cpu": self.stats()["cpu"] - cpu,
            "client_cpu": sum(p["cpu"] for p in parts),
        }

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close", None))
            pipe.recv()
        for worker in self.workers:
            worker.join(30)
        self.http.close()
        self.server.terminate()
        self.server.wait(30)


def percentile(values: array[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # ns -> ms


def _idle_memory(run: Run, kind: str, clients: int, stack: str) -> dict[str, Any]:
    """Which server, and its memory before and with `clients` idle streams."""
    return {
        "server": kind,
        "stack": stack,
        "clients": clients,
        "rss_base_mib": run.base["rss_kib"] / 1024,
        "rss_idle_mib": run.idle["rss_kib"] / 1024,
        "kib_per_sub": (run.idle["rss_kib"] - run.base["rss_kib"]) / clients,
    }


def measure(
    kind: str, clients: int, stack: str, bursts: int, paced_seconds: float
) -> dict[str, Any]:
    burst_size = max(10, min(1000, 100_000 // clients))
    rate = max(1, min(100, 10_000 // clients))
    run = Run(kind, clients, stack)
    try:
        result = _idle_memory(run, kind, clients, stack)
        throughputs, latencies, burst_cpus, burst_p99s = [], array("q"), [], []
        lost = gaps = 0
        server_cpu = client_cpu = 0.0
        for _ in range(bursts):
            phase = run.phase(burst_size, mode="burst", events=burst_size, bursts=1, pause=0)
            duration = (phase["last"].get(0, 0) - phase["starts"][0]) / 1e9
            throughputs.append(phase["count"] / duration if duration > 0 else 0.0)
            latencies.extend(phase["latencies"])
            lost += phase["expected"] - phase["count"]
            gaps += phase["gaps"]
            server_cpu += phase["server_cpu"]
            client_cpu += phase["client_cpu"]
            burst_cpus.append(phase["server_cpu"])
            burst_p99s.append(percentile(phase["latencies"], 0.99))
        result.update(
            burst_events=burst_size,
            burst_eps=statistics.median(throughputs),
            burst_p50_ms=percentile(latencies, 0.50),
            burst_p99_ms=percentile(latencies, 0.99),
            burst_lost=lost,
            burst_gaps=gaps,
            burst_server_cpu=server_cpu,
            burst_server_cpu_ms=statistics.median(burst_cpus) * 1e3,
            burst_server_cpu_min_ms=min(burst_cpus) * 1e3,
            burst_p99_median_ms=statistics.median(burst_p99s),
            burst_client_cpu=client_cpu,
        )
        total = int(rate * paced_seconds)
        phase = run.phase(total, mode="paced", rate=rate, seconds=paced_seconds)
        result.update(
            paced_rate=rate,
            paced_p50_ms=percentile(phase["latencies"], 0.50),
            paced_p99_ms=percentile(phase["latencies"], 0.99),
            paced_lost=phase["expected"] - phase["count"],
            paced_gaps=phase["gaps"],
            paced_server_cpu=phase["server_cpu"],
            paced_client_cpu=phase["client_cpu"],
        )
        result["rss_end_mib"] = run.stats()["rss_kib"] / 1024
        return result
    finally:
        run.close()


def measure_idle(kind: str, clients: int, stack: str) -> dict[str, Any]:
    run = Run(kind, clients, stack)
    try:
        return _idle_memory(run, kind, clients, stack)
    finally:
        run.close()


def report_idle(results: list[dict[str, Any]]) -> str:
    lines = [
        "| uvicorn on | server | idle streams | server RSS before / idle MiB | KiB per idle sub |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['stack']} | {r['server']} | {r['clients']:,} "
            f"| {r['rss_base_mib']:.0f} / {r['rss_idle_mib']:.0f} | {r['kib_per_sub']:.1f} |"
        )
    return "\n".join(lines)


def report(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Linux "
        f"{platform.release()}; Python {platform.python_version()}; uvicorn "
        f"{version('uvicorn')}, h11 {version('h11')}, {_optional('httptools')}, "
        f"{_optional('uvloop')}, starlette {version('starlette')}, "
        f"sse-starlette {version('sse-starlette')}, anyio {version('anyio')}.",
        f"Command: `{command}`",
        "",
        "| uvicorn on | server | clients | burst (events) | delivered events/s "
        "| burst p50 / p99 ms | paced (ev/s) p50 / p99 ms | lost | server RSS idle MiB "
        "| KiB per idle sub | CPU s server / clients (bursts) "
        "| server CPU ms per burst, median (min) | one burst's p99 ms, median |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lost = r["burst_lost"] + r["paced_lost"]
        gaps = r["burst_gaps"] + r["paced_gaps"]
        lost_text = f"{lost}" + (f" ({gaps} gap markers)" if gaps else "")
        lines.append(
            f"| {r['stack']} | {r['server']} | {r['clients']:,} | {r['burst_events']} "
            f"| {r['burst_eps']:,.0f} "
            f"| {r['burst_p50_ms']:.1f} / {r['burst_p99_ms']:.1f} "
            f"| ({r['paced_rate']}) {r['paced_p50_ms']:.1f} / {r['paced_p99_ms']:.1f} "
            f"| {lost_text} | {r['rss_idle_mib']:.0f} | {r['kib_per_sub']:.1f} "
            f"| {r['burst_server_cpu']:.2f} / {r['burst_client_cpu']:.2f} "
            f"| {r['burst_server_cpu_ms']:.1f} ({r['burst_server_cpu_min_ms']:.1f}) "
            f"| {r['burst_p99_median_ms']:.1f} |"
        )
    return "\n".join(lines)


def _optional(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"no {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 100, 1000, 10000])
    parser.add_argument("--servers", nargs="+", default=SERVERS, choices=sorted(APPS))
    parser.add_argument("--stacks", nargs="+", default=["h11", "httptools"], choices=STACKS)
    parser.add_argument(
        "--idle", action="store_true", help="only the idle-memory figure (any server)"
    )
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--paced-seconds", type=float, default=4.0)
    args = parser.parse_args()
    if not args.idle and not {"bare-asgi", "bare-starlette"}.isdisjoint(args.servers):
        parser.error("the bare servers only hold idle streams: use them with --idle")
    results = []
    for stack in args.stacks:
        for clients in args.clients:
            for kind in args.servers:
                if args.idle:
                    result = measure_idle(kind, clients, stack)
                else:
                    result = measure(kind, clients, stack, args.bursts, args.paced_seconds)
                print(result, flush=True)
                results.append(result)
    command = ".venv/bin/python bench/sse_fanout.py " + " ".join(sys.argv[1:])
    print()
    print(report_idle(results) if args.idle else report(results, command.strip()))


if __name__ == "__main__":
    main()

"""Scale-out: SSE fan-out through RedisBroker on two server processes vs the in-process broker.

    .venv/bin/python bench/redis_fanout.py                 # 1,000 clients, 5 bursts
    .venv/bin/python bench/redis_fanout.py --clients 200 --bursts 3

memory: one uvicorn process, `stream.Broker`, every client on it.
redis: two uvicorn processes, each a `RedisBroker` on the Redis at 127.0.0.1:6379; half the
clients on each; process A publishes, so half the events cross processes through Redis.

Same load generator (`sse_loadgen.py`, two processes) and measures as `sse_fanout.py`: a burst
of B = 100,000 / C events published back to back (delivered events/s = C * B / (last arrival -
burst start), median over the bursts) and R events/s paced for a few seconds;
latency is publish to receive per event (CLOCK_MONOTONIC, shared by every process).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from array import array
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import sse_fanout
import sse_loadgen

REDIS_URL = os.environ.get("CHRONOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def serve(url: str, prefix: str, port: int) -> None:
    """Server process: SSE on `/events` (topic "bench"), `/publish`, `/stats`."""
    import uvicorn
    from sse_servers import cpu_seconds, rss_kib, run_schedule
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from chronos import stream

    options: dict[str, Any] = {"key_prefix": prefix} if url.startswith("redis") else {}
    broker = stream.broker_from_url(url, **options)

    def publish(data: dict[str, int]) -> None:
        broker.publish(stream.Event("tick", data), topic="bench")

    async def stats(request: Request) -> Response:
        subscribers = len(broker._subscriptions)  # type: ignore[attr-defined]  # both brokers
        return JSONResponse({"rss_kib": rss_kib(), "cpu": cpu_seconds(), "subs": subscribers})

    async def publish_route(request: Request) -> Response:
        return JSONResponse(await run_schedule(publish, request.query_params))

    app = Starlette(
        routes=[
            Route("/events", broker.sse_handler(topics=["bench"])),
            Route("/stats", stats),
            Route("/publish", publish_route, methods=["POST"]),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=1,
        access_log=False,
    )


class Cluster:
    """Server processes and one load generator per server (or two on a lone server)."""

    def __init__(self, url: str, servers: int, clients: int) -> None:
        prefix = self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.url = url
        self.ports = [sse_fanout.free_port() for _ in range(servers)]
        self.servers = [
            subprocess.Popen([sys.executable, __file__, "serve", url, prefix, str(port)])
            for port in self.ports
        ]
        self.http = [
            httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=300) for p in self.ports
        ]
        for client in self.http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/stats")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        targets = self.ports if servers > 1 else self.ports * 2
        shares = [clients // len(targets)] * len(targets)
        shares[-1] += clients - sum(shares)
        self.pipes: list[Any] = []
        self.workers: list[multiprocessing.Process] = []
        for port, share in zip(targets, shares, strict=True):
            parent, child = multiprocessing.Pipe()
            worker = multiprocessing.Process(
                target=sse_loadgen.run, args=(child, "127.0.0.1", port, share)
            )
            worker.start()
            self.pipes.append(parent)
            self.workers.append(worker)
        connected = sum(pipe.recv() for pipe in self.pipes)
        if connected != clients:
            raise RuntimeError(f"only {connected} of {clients} clients connected")
        while sum(c.get("/stats").json()["subs"] for c in self.http) != clients:
            time.sleep(0.05)
        time.sleep(0.5)

    def cpu(self) -> float:
        return sum(float(c.get("/stats").json()["cpu"]) for c in self.http)

    def phase(self, per_client: int, **query: Any) -> dict[str, Any]:
        for pipe in self.pipes:
            pipe.send(("reset", None))
        for pipe in self.pipes:
            pipe.recv()
        cpu = self.cpu()
        starts = self.http[0].post("/publish", params=query).json()["starts"]  # A publishes
        for pipe in self.pipes:
            pipe.send(("collect", per_client))
        parts = [pipe.recv() for pipe in self.pipes]
        latencies = array("q")
        last = 0
        for part in parts:
            latencies.frombytes(part["latencies"])
            last = max([last, *part["last_receive"].values()])
        return {
            "duration": (last - starts[0]) / 1e9,
            "count": sum(p["count"] for p in parts),
            "lost": sum(p["expected"] - p["count"] for p in parts),
            "gaps": sum(p["gaps"] for p in parts),
            "latencies": latencies,
            "server_cpu": self.cpu() - cpu,
        }

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close", None))
            pipe.recv()
        for worker in self.workers:
            worker.join(30)
        for client in self.http:
            client.close()
        for server in self.servers:
            server.terminate()
            server.wait(30)
        if self.url.startswith("redis"):  # leave nothing behind in the shared Redis
            import redis

            client = redis.Redis.from_url(self.url)
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def measure(name: str, url: str, servers: int, clients: int, bursts: int, paced: float) -> str:
    burst = max(10, min(1000, 100_000 // clients))
    rate = max(1, min(100, 10_000 // clients))
    cluster = Cluster(url, servers, clients)
    try:
        eps, latencies, lost, gaps, cpu = [], array("q"), 0, 0, 0.0
        for _ in range(bursts):
            p = cluster.phase(burst, mode="burst", events=burst, bursts=1, pause=0)
            eps.append(p["count"] / p["duration"] if p["duration"] > 0 else 0.0)
            latencies.extend(p["latencies"])
            lost, gaps, cpu = lost + p["lost"], gaps + p["gaps"], cpu + p["server_cpu"]
        p = cluster.phase(int(rate * paced), mode="paced", rate=rate, seconds=paced)
        pct = sse_fanout.percentile
        return (
            f"| {name} | {servers} | {clients} | {burst} | {statistics.median(eps):,.0f} | "
            f"{pct(latencies, 0.5):.1f} / {pct(latencies, 0.99):.1f} | {lost} / {gaps} | "
            f"{cpu:.1f} | {rate}/s: {pct(p['latencies'], 0.5):.1f} / "
            f"{pct(p['latencies'], 0.99):.1f} | {p['lost']} / {p['gaps']} |"
        )
    finally:
        cluster.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--paced-seconds", type=float, default=4.0)
    args = parser.parse_args()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared); "
        f"Python {platform.python_version()}; h11 + asyncio"
    )
    print(f"Command: {' '.join(['.venv/bin/python', 'bench/redis_fanout.py', *sys.argv[1:]])}\n")
    print(
        "| broker | processes | clients | burst | delivered ev/s (median) | burst p50 / p99 ms "
        "| lost / gaps | server CPU s | paced p50 / p99 ms | paced lost / gaps |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, url, servers in (("in-process", "memory://", 1), ("Redis", REDIS_URL, 2)):
        print(
            measure(name, url, servers, args.clients, args.bursts, args.paced_seconds), flush=True
        )


if __name__ == "__main__":
    main()

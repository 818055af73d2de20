"""Fairness of the Redis reader: an unrelated client's latency while others follow many topics.

    .venv/bin/python bench/redis_fairness.py                  # 25 connections x 100 topics
    .venv/bin/python bench/redis_fairness.py --connections 25 --topics 100 --rate 2000

One uvicorn process serves `RedisBroker.sse_handler()` (the Redis at 127.0.0.1:6379, or
CHRONOS_BENCH_REDIS_URL). A probe client follows a topic of its own; the bench publishes one
probe event every 20 ms (through a `RedisBroker` of its own, like another server process) and
measures publish to receive (CLOCK_MONOTONIC). Three phases of `--seconds` each:

- alone: the probe is the only client;
- idle: `--connections` other SSE connections each follow `--topics` distinct topics
  (the per-connection limit is 100 by default), nothing is published to them;
- busy: the same, while a load process publishes `--rate` events/s spread over those topics.

The other connections are raw sockets that read and discard, in a process of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
import sse_fanout

REDIS_URL = os.environ.get("CHRONOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROBE_INTERVAL = 0.02


def serve(prefix: str, port: int, max_topics: int) -> None:
    """Server process: SSE on `/events?topic=...`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from chronos.stream.redis import RedisBroker

    broker = RedisBroker(REDIS_URL, key_prefix=prefix)
    app = Starlette(routes=[Route("/events", broker.sse_handler(max_topics=max_topics))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def load(pipe: Any, prefix: str, port: int, connections: int, topics: int) -> None:
    """Load process: `connections` streams of `topics` topics each; publishes on command."""
    asyncio.run(_load(pipe, prefix, port, connections, topics))


async def _load(pipe: Any, prefix: str, port: int, connections: int, topics: int) -> None:
    from chronos import stream
    from chronos.stream.redis import RedisBroker

    names = [[f"load-{c}-{t}" for t in range(topics)] for c in range(connections)]
    received = 0
    streaming = 0

    async def follow(mine: list[str]) -> None:
        nonlocal received, streaming
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        query = "&".join(f"topic={name}" for name in mine)
        writer.write(f"GET /events?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await reader.read(65536)  # the headers: subscribed
        streaming += 1
        while chunk := await reader.read(65536):
            received += chunk.count(b"\n\n")

    tasks = [asyncio.create_task(follow(mine)) for mine in names]
    every = [name for mine in names for name in mine]
    loop = asyncio.get_running_loop()
    async with RedisBroker(REDIS_URL, key_prefix=prefix, max_outbox=1_000_000) as broker:
        while streaming < connections:  # noqa: ASYNC110  # counted by the tasks above
            await asyncio.sleep(0.05)
        pipe.send("connected")
        while True:
            command, rate = await loop.run_in_executor(None, pipe.recv)
            if command == "close":
                break
            start = time.monotonic()
            published = received = 0
            while (elapsed := time.monotonic() - start) < float(rate[1]):
                for _ in range(int(rate[0] * elapsed) - published):  # `rate` events/s
                    broker.publish(stream.Event("load", {"n": 1}), topic=random.choice(every))
                    published += 1
                await asyncio.sleep(0.01)
            before = -1
            while received != before:  # until the streams have caught up
                before = received
                await asyncio.sleep(1.0)
            pipe.send((published, received))
    for task in tasks:
        task.cancel()
    pipe.send("closed")


async def probe(prefix: str, port: int, seconds: float) -> list[float]:
    """Publish a probe event every 20 ms for `seconds`; its latencies in ms."""
    from chronos import stream
    from chronos.stream.redis import RedisBroker

    latencies: list[float] = []
    topic = f"probe-{uuid.uuid4().hex[:6]}"
    async with (
        RedisBroker(REDIS_URL, key_prefix=prefix) as broker,
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"http://127.0.0.1:{port}/events", params={"topic": topic}) as r,
    ):
        done = asyncio.Event()

        async def read() -> None:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    event = orjson.loads(line[6:])
                    if event["type"] == "probe":
                        latencies.append((time.monotonic_ns() - event["data"]["t"]) / 1e6)
                        if event["data"]["last"]:
                            done.set()

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)  # the subscription is admitted
        count = int(seconds / PROBE_INTERVAL)
        for n in range(count):
            data = {"t": time.monotonic_ns(), "last": n == count - 1}
            broker.publish(stream.Event("probe", data), topic=topic)
            await asyncio.sleep(PROBE_INTERVAL)
        try:
            await asyncio.wait_for(done.wait(), 60)
        finally:
            reader.cancel()
    return latencies


def row(name: str, latencies: list[float], expected: int, note: str = "") -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")
    median = statistics.median(ordered) if ordered else float("nan")
    top = ordered[-1] if ordered else float("nan")
    return (
        f"| {name} | {len(latencies)} / {expected} | {median:.1f} | {p99:.1f} | {top:.1f} | "
        f"{note} |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=25)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    port = sse_fanout.free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", prefix, str(port), str(max(100, args.topics))]
    )
    expected = int(args.seconds / PROBE_INTERVAL)
    rows: list[str] = []
    worker: multiprocessing.Process | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/events", params={"topic": "x"}, timeout=0.2)
            except httpx.ReadTimeout:
                break  # the stream opened
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rows.append(row("alone", asyncio.run(probe(prefix, port, args.seconds)), expected))
        parent, child = multiprocessing.Pipe()
        worker = multiprocessing.Process(
            target=load, args=(child, prefix, port, args.connections, args.topics)
        )
        worker.start()
        parent.recv()
        time.sleep(2.0)  # the server's reader admits the new subscriptions
        followed = f"{args.connections} x {args.topics} topics"
        rows.append(row("idle", asyncio.run(probe(prefix, port, args.seconds)), expected, followed))
        parent.send(("publish", (args.rate, args.seconds + 2.0)))
        latencies = asyncio.run(probe(prefix, port, args.seconds))
        published, received = parent.recv()
        note = f"{followed}, {args.rate} events/s to them: {received:,} of {published:,} read"
        rows.append(row("busy", latencies, expected, note))
        parent.send(("close", None))
        parent.recv()
    finally:
        if worker is not None:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
        server.terminate()
        server.wait(30)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    print(f"# {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print("| phase | probes received | median ms | p99 ms | max ms | others |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""The soak test's server: chronos's SSE handler under uvicorn, with a publisher and a stats route.

    python -m tests.soak.server PORT --topics 100 --topic-rate 0.2 --stack httptools

Run as a process of its own by `tests/soak/driver.py`, so that its memory (RSS) and its file
descriptors are its own. Routes:

- `GET /topics/{topic}/events`: the stream (`broker.sse_handler()`), counted on the way in and
  out, so that the stats say how many handlers are still running, not only subscriptions;
- `GET /stats`: subscriptions, running and started handlers, asyncio tasks, open file
  descriptors, RSS, CPU time, the event loop's worst lag since the last call, the garbage
  collector's runs and CPU time, and the last sequence number published to each topic;
- `POST /stop`: stop publishing; answers with the final sequence number of each topic.

Each topic gets `--topic-rate` events a second, `{"seq": n, "pad": "..."}` with `n` counting
1, 2, 3, ... per topic, published from a task on the server's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chronos.stream import Broker, Event


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _Counted:
    """Counts the handlers that started and the ones still running."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.started = 0
        self.running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started += 1
        self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1


class _Publisher:
    def __init__(self, broker: Broker, topics: int, topic_rate: float, payload: int) -> None:
        self.broker = broker
        self.topics = [f"t{i}" for i in range(topics)]
        self.rate = topic_rate * topics
        self.pad = "x" * payload
        self.last_seq = dict.fromkeys(self.topics, 0)
        self.published = 0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        topics, last_seq = self.topics, self.last_seq
        while not self.stopped.is_set():
            due = int((loop.time() - start) * self.rate)
            # Catch up in one go when the loop was late: the rate is a rate, not a schedule.
            while self.published < due:
                topic = topics[self.published % len(topics)]
                last_seq[topic] += 1
                self.broker.publish(Event("tick", {"seq": last_seq[topic], "pad": self.pad}), topic)
                self.published += 1
            await asyncio.sleep(0.01)


class _LagMonitor:
    """How late the loop wakes a task that sleeps 50 ms: the worst since the last reading."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            self.worst = max(self.worst, loop.time() - before - 0.05)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


class _GCTimer:
    """Collections of each generation of the cyclic garbage collector, and their CPU time."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.process_time() - self._started


def make_app(
    topics: int, topic_rate: float, payload: int, replay_seconds: float, heartbeat: float
) -> Starlette:
    broker = Broker(replay_seconds=replay_seconds)
    publisher = _Publisher(broker, topics, topic_rate, payload)
    events = _Counted(broker.sse_handler(heartbeat=heartbeat))
    lag = _LagMonitor()
    collector = _GCTimer()

    async def stats(request: Request) -> Response:
        statistics = broker.statistics()
        return JSONResponse(
            {
                "subscriptions": statistics.subscriptions,
                "retained": statistics.retained,
                "handlers_running": events.running,
                "handlers_started": events.started,
                "tasks": len(asyncio.all_tasks()),
                "fds": len(os.listdir("/proc/self/fd")),
                "rss_kib": rss_kib(),
                "cpu_seconds": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
                "loop_lag_ms": round(lag.take() * 1000, 1),
                "gc_collections": collector.collections,
                "gc_seconds": [round(seconds, 3) for seconds in collector.seconds],
                "published": publisher.published,
                "last_seq": publisher.last_seq,
            }
        )

    async def stop(request: Request) -> Response:
        publisher.stopped.set()
        await asyncio.sleep(0.05)  # the publisher's current round ends
        return JSONResponse({"last_seq": publisher.last_seq, "published": publisher.published})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(publisher.run())
        monitor = asyncio.create_task(lag.run())
        try:
            yield
        finally:
            publisher.stopped.set()
            monitor.cancel()
            await task
            await broker.aclose()  # every stream ends now, not after uvicorn's grace period

    return Starlette(
        routes=[
            Route("/topics/{topic}/events", events),
            Route("/stats", stats),
            Route("/stop", stop, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--topic-rate", type=float, default=1.0)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--replay-seconds", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--stack", choices=["h11", "httptools"], default="httptools")
    parser.add_argument("--gc-threshold", type=int, nargs=3, default=None)
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(*args.gc_threshold)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = make_app(args.topics, args.topic_rate, args.payload, args.replay_seconds, args.heartbeat)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http=args.stack,
        loop="uvloop" if args.stack == "httptools" else "asyncio",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()

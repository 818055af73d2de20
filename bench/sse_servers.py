"""The two servers `sse_fanout.py` compares, each one uvicorn process with its own publisher.

    .venv/bin/python bench/sse_servers.py chronos 8001 [h11|httptools]
    .venv/bin/python bench/sse_servers.py sse-starlette 8002 [h11|httptools]
    .venv/bin/python bench/sse_servers.py bare-asgi|bare-starlette 8003 [h11|httptools]

`h11` runs uvicorn on h11 and the asyncio loop (its pure-Python defaults); `httptools` on
httptools and uvloop (what `uvicorn[standard]` installs).

`SSE_BENCH_PROFILE=/tmp/prof` profiles the server into `/tmp/prof.<server>`.
Same routes on both: `GET /events` (the stream), `GET /stats` (RSS, CPU time, subscribers)
and `POST /publish?mode=burst|paced&...` (publishes in this process, returns when done).
`bare-asgi` and `bare-starlette` only hold idle streams (see `IdleStreams`), for the idle-memory
floor of uvicorn alone and of uvicorn + Starlette routing; `chronos-asgi` is `chronos` with
`/events` served by the handler directly (as the whole ASGI app would be), not via Starlette.
The sse-starlette side is its documented pattern: one `asyncio.Queue` per client, fed by the
publisher, drained by the generator given to `EventSourceResponse`. Both publish the same JSON.
"""

from __future__ import annotations

import asyncio
import atexit
import cProfile
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chronos import stream


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tick(burst: int, index: int) -> dict[str, int]:
    # The load generator finds "b" and "t" with one regex: keep this key order.
    return {"b": burst, "i": index, "t": time.monotonic_ns()}


async def run_schedule(
    publish: Callable[[dict[str, int]], None], query: Any
) -> dict[str, list[int]]:
    """Publish as `query` says; return when each burst started and was published (ns)."""
    starts: list[int] = []
    published: list[int] = []  # when the publish loop ended: the fan-out's share of latency
    if query["mode"] == "burst":
        events, bursts = int(query["events"]), int(query["bursts"])
        pause = float(query["pause"])
        for b in range(bursts):
            starts.append(time.monotonic_ns())
            for i in range(events):
                publish(tick(b, i))
            published.append(time.monotonic_ns())
            await asyncio.sleep(pause)
    else:  # paced: `rate` events a second for `seconds`
        rate, seconds = float(query["rate"]), float(query["seconds"])
        start = time.monotonic()
        starts.append(time.monotonic_ns())
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            publish(tick(0, i))
    return {"starts": starts, "published": published}


def chronos_app(starlette: bool = True) -> Any:
    broker = stream.Broker()

    def publish(data: dict[str, int]) -> None:
        broker.publish(stream.Event("tick", data))

    async def stats(request: Request) -> Response:
        subscribers = broker.statistics().subscriptions
        return JSONResponse({"rss_kib": rss_kib(), "cpu": cpu_seconds(), "subs": subscribers})

    async def publish_route(request: Request) -> Response:
        return JSONResponse(await run_schedule(publish, request.query_params))

    handler = broker.sse_handler()
    app = Starlette(
        routes=[
            Route("/events", handler),
            Route("/stats", stats),
            Route("/publish", publish_route, methods=["POST"]),
        ]
    )
    return app if starlette else _outside(app, handler)


def _outside(app: Starlette, events: Any) -> Any:
    """`app`, with `/events` served by `events` directly rather than through Starlette."""

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/events":
            await events(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


def sse_starlette_app() -> Starlette:
    from sse_starlette import EventSourceResponse

    queues: set[asyncio.Queue[str]] = set()

    def publish(data: dict[str, int]) -> None:
        payload = orjson.dumps({"type": "tick", "topic": "default", "data": data}).decode()
        for queue in queues:
            queue.put_nowait(payload)

    async def events(request: Request) -> Response:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues.add(queue)

        async def generate() -> AsyncIterator[dict[str, str]]:
            try:
                while True:
                    yield {"data": await queue.get()}
            finally:
                queues.discard(queue)

        return EventSourceResponse(generate(), ping=15)

    async def stats(request: Request) -> Response:
        return JSONResponse({"rss_kib": rss_kib(), "cpu": cpu_seconds(), "subs": len(queues)})

    async def publish_route(request: Request) -> Response:
        return JSONResponse(await run_schedule(publish, request.query_params))

    return Starlette(
        routes=[
            Route("/events", events),
            Route("/stats", stats),
            Route("/publish", publish_route, methods=["POST"]),
        ]
    )


class IdleStreams:
    """The floor under any SSE handler: a raw ASGI app holding streams open, nothing else.

    It sends the response head and a comment, then waits for the disconnect, as every
    handler must. The idle-memory comparison subtracts this from chronos's figure.
    """

    def __init__(self) -> None:
        self.open = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b": connected\n\n", "more_body": True})
        self.open += 1
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.open -= 1


def bare_app(starlette: bool) -> Any:
    """`IdleStreams` at /events; as the whole ASGI app, or routed by Starlette like the rest."""
    streams = IdleStreams()

    async def stats(request: Request) -> Response:
        return JSONResponse({"rss_kib": rss_kib(), "cpu": cpu_seconds(), "subs": streams.open})

    async def publish_route(request: Request) -> Response:
        return JSONResponse({"starts": [], "published": []})  # idle only: nothing to publish

    app = Starlette(
        routes=[
            Route("/events", streams),
            Route("/stats", stats),
            Route("/publish", publish_route, methods=["POST"]),
        ]
    )
    return app if starlette else _outside(app, streams)


APPS: dict[str, Callable[[], Any]] = {
    "chronos": lambda: chronos_app(),
    "chronos-asgi": lambda: chronos_app(starlette=False),
    "sse-starlette": lambda: sse_starlette_app(),
    "bare-asgi": lambda: bare_app(starlette=False),
    "bare-starlette": lambda: bare_app(starlette=True),
}


# uvicorn's `--http` + `--loop`; the first two are its pure-Python and `[standard]` defaults.
STACKS = {
    "h11": "h11+asyncio",
    "httptools": "httptools+uvloop",
    "h11+uvloop": "h11+uvloop",
    "httptools+asyncio": "httptools+asyncio",
}


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    stack = sys.argv[3] if len(sys.argv) > 3 else "h11"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    http, _, loop = STACKS[stack].partition("+")
    app = APPS[kind]()
    profile = os.environ.get("SSE_BENCH_PROFILE")  # a path prefix: profile the server
    if profile:
        profiler = cProfile.Profile()
        # uvicorn re-raises SIGTERM once it has shut down: exit normally, so the profile is saved.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        atexit.register(lambda: profiler.dump_stats(f"{profile}.{kind}"))
        profiler.enable()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=http,
        loop=loop,
        backlog=4096,
        timeout_graceful_shutdown=1,
        access_log=False,
    )


if __name__ == "__main__":
    main()

"""The most the serve benchmarks' SDK clients can drive on this machine: `runs.wait` runs/s,
and the floor of the first-event latency of `runs.stream`.

    .venv/bin/python bench/serve_client_ceiling.py                 # 50 users, 5 rounds of 5 s
    .venv/bin/python bench/serve_client_ceiling.py --users 1 50 --rounds 3
    .venv/bin/python bench/serve_client_ceiling.py --measures streams --client-gc freeze default

`bench/serve_vs_langgraph.py` and `bench/serve_ab.py` run their users (the official
`langgraph-sdk`, one client each) in their own process, on the same two cores as the server.
Here the same loop (`wait_loops`: a new thread, then `runs.wait` on it) runs against a
server that does no work at all: a canned ASGI app under uvicorn on uvloop that answers
`threads.create` with a thread and `runs.wait` with the benchmark graph's final values, of
the sizes Chronos sends. So its runs/s bounds what any server can show in those benchmarks,
and the clients' CPU time per run (this process's, their executor threads included) says
what they take of the two cores.

For streams, the canned server answers `runs.stream` with the bytes of a real one: at start,
`chronos serve tests.server.graphs:agent` streams a run (modes `custom` + `messages-tuple`, as
`first_event_latency` asks; after a warm-up run) and this process keeps each read of the
response as one burst (a lone client reads what each write sent), then stops it; the canned
server writes those bursts back, one write each, at their recorded times (all at once,
an in-process user parsed its whole stream before the others got a first event).
`first_event_latency` (the users in this process) and `first_event_latency_per_process`
(a process each) against it give the part of the serve benchmarks' first-event figures that
is the clients' own, with each `--client-gc` mode given (see `bench/serve_vs_langgraph.py`),
and what a stream costs the clients in one process (CPU time: they parse every token of
every stream).
Printed per round, then medians, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from bench.serve_vs_langgraph import (
    CLIENT_GC,
    GRAPH_ID,
    STREAM_MODES,
    client_gc,
    first_event_latency,
    first_event_latency_per_process,
    wait_loops,
)
from tests.server.conformance_servers import chronos_server

_CANNED = r"""
import asyncio, json, sys, time, uuid
import orjson, uvicorn

THREAD = {"created_at": "2026-12-03T00:00:00+00:00", "updated_at": "2026-12-03T00:00:00+00:00",
          "metadata": {}, "status": "idle", "values": None, "interrupts": {}}
VALUES = orjson.dumps({"topic": "w", "steps": ["plan", "write", "review"],
                       "draft": "".join(f"w{i} " for i in range(200)), "verdict": "ok"})
with open(sys.argv[2]) as recording:
    STREAM = json.load(recording)
STREAM_HEADERS = [(k.encode(), v.encode()) for k, v in STREAM["headers"]]
BURSTS = [burst.encode("latin-1") for burst in STREAM["bursts"]]

async def stream(send):
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    start = time.perf_counter()
    for at, burst in zip(STREAM["at"], BURSTS):
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
        await send({"type": "http.response.body", "body": burst, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"].endswith("/runs/stream"):
        await stream(send)
        return
    body = (orjson.dumps({"thread_id": str(uuid.uuid4()), **THREAD})
            if scope["path"] in ("/threads", "/ok") else VALUES)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop")
"""


# Framing the canned server sets itself (uvicorn chunks a response without a length).
_LEFT_OUT = {"content-length", "transfer-encoding", "date", "server"}


async def _recorded_stream(url: str) -> dict[str, list[Any]]:
    """The headers, bursts and their times of a `runs.stream` response of the server at `url`."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(2):  # the first run warms the server up; the second is kept
            thread = (await http.post("/threads", json={})).json()["thread_id"]
            body = {"assistant_id": GRAPH_ID, "input": {"topic": "f"},
                    "stream_mode": STREAM_MODES}
            async with http.stream("POST", f"/threads/{thread}/runs/stream",
                                   json=body) as response:
                start = time.perf_counter()
                headers = [[k, v] for k, v in response.headers.items() if k not in _LEFT_OUT]
                bursts, at = [], []
                async for burst in response.aiter_raw():
                    at.append(time.perf_counter() - start)
                    bursts.append(burst.decode("latin-1"))
    return {"headers": headers, "bursts": bursts, "at": at}


def _wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(f"{url}/ok", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the canned server did not start")


def _measure_waits(url: str, server_pid: int, users: int,
                   duration: float) -> dict[str, float]:
    loops = asyncio.run(wait_loops(url, users, duration, server_pid))
    runs = max(loops.runs, 1)
    return {
        f"runs/s, {users} users": loops.rate,
        f"client CPU ms per run, {users} users": 1000 * loops.client_cpu / runs,
        f"canned server CPU ms per run, {users} users": 1000 * (loops.server_cpu or 0.0) / runs,
    }


def _measure_streams(url: str, users: int, mode: str) -> dict[str, float]:
    per_user = max(2, 100 // users)  # as serve_vs_langgraph.py: 100 runs alone, 2 each of 50
    client_gc(mode)
    together = asyncio.run(first_event_latency(url, users, per_user))
    client_gc(mode)
    apart = first_event_latency_per_process(url, users, per_user)
    return {
        f"first event p50 ms, {users} users, gc {mode}": together["first p50 ms"],
        f"first event p99 ms, {users} users, gc {mode}": together["first p99 ms"],
        f"graph event p99 ms, {users} users, gc {mode}": together["graph p99 ms"],
        f"client CPU ms per stream, {users} users, gc {mode}": together["client CPU ms per stream"],
        f"first event p50 ms, {users} procs, gc {mode}": apart["first p50 ms"],
        f"first event p99 ms, {users} procs, gc {mode}": apart["first p99 ms"],
        f"graph event p99 ms, {users} procs, gc {mode}": apart["graph p99 ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[50])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--measures", nargs="+", choices=("waits", "streams"),
                        default=["waits", "streams"])
    parser.add_argument("--client-gc", nargs="+", choices=CLIENT_GC, default=["freeze"],
                        help="the clients' garbage collector, as in serve_vs_langgraph.py")
    args = parser.parse_args()
    with chronos_server() as api:
        recording = asyncio.run(_recorded_stream(api.url))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    found: dict[str, list[float]] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as recorded:
        json.dump(recording, recorded)
        recorded.flush()
        server = subprocess.Popen([sys.executable, "-c", _CANNED, str(port), recorded.name])
        try:
            _wait_ready(url)
            for round_ in range(args.rounds):
                for users in args.users:
                    measured: dict[str, float] = {}
                    if "waits" in args.measures:
                        client_gc(args.client_gc[0])
                        measured.update(_measure_waits(url, server.pid, users, args.duration))
                    if "streams" in args.measures:
                        for mode in args.client_gc:
                            measured.update(_measure_streams(url, users, mode))
                    for key, value in measured.items():
                        found.setdefault(key, []).append(value)
                    print(f"round {round_ + 1}, {users} users: "
                          + "; ".join(f"{k} {v:.2f}" for k, v in measured.items())
                          + f"; load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            server.terminate()
            server.wait(10)
    print(f"median of {args.rounds} rounds; the recorded stream's bursts, bytes @ ms: "
          + ", ".join(f"{len(burst)} @ {1000 * at:.1f}"
                      for burst, at in zip(recording["bursts"], recording["at"], strict=True)))
    for key, values in found.items():
        print(f"{key:48} {statistics.median(values):10.2f}")


if __name__ == "__main__":
    main()

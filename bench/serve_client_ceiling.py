"""The most `runs.wait` runs/s the serve benchmarks' SDK clients can drive on this machine.

    .venv/bin/python bench/serve_client_ceiling.py                 # 50 users, 5 rounds of 5 s
    .venv/bin/python bench/serve_client_ceiling.py --users 1 50 --rounds 3

`bench/serve_vs_langgraph.py` and `bench/serve_ab.py` run their users (the official
`langgraph-sdk`, one client each) in their own process, on the same two cores as the server.
Here the same loop (`runs_per_second`: a new thread, then `runs.wait` on it) runs against a
server that does no work at all: a canned ASGI app under uvicorn on uvloop that answers
`threads.create` with a thread and `runs.wait` with the benchmark graph's final values, of
the sizes Chronos sends. So its runs/s bounds what any server can show in those benchmarks,
and the clients' CPU time per run (this process's, their executor threads included) says
what they take of the two cores. Printed per round, then medians, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from bench.serve_vs_langgraph import runs_per_second

_CANNED = r"""
import sys, uuid
import orjson, uvicorn

THREAD = {"created_at": "2026-12-03T00:00:00+00:00", "updated_at": "2026-12-03T00:00:00+00:00",
          "metadata": {}, "status": "idle", "values": None, "interrupts": {}}
VALUES = orjson.dumps({"topic": "w", "steps": ["plan", "write", "review"],
                       "draft": "".join(f"w{i} " for i in range(200)), "verdict": "ok"})

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    body = (orjson.dumps({"thread_id": str(uuid.uuid4()), **THREAD})
            if scope["path"] in ("/threads", "/ok") else VALUES)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop")
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(f"{url}/ok", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the canned server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[50])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", _CANNED, str(port)])
    found: dict[str, list[float]] = {}
    try:
        _wait_ready(url)
        for round_ in range(args.rounds):
            for users in args.users:
                clients, served, start = time.process_time(), _cpu_seconds(server.pid), \
                    time.monotonic()
                rate = asyncio.run(runs_per_second(url, users, args.duration))
                runs = max(rate * (time.monotonic() - start), 1)
                measured = {
                    f"runs/s, {users} users": rate,
                    f"client CPU ms per run, {users} users":
                        1000 * (time.process_time() - clients) / runs,
                    f"canned server CPU ms per run, {users} users":
                        1000 * (_cpu_seconds(server.pid) - served) / runs,
                }
                for key, value in measured.items():
                    found.setdefault(key, []).append(value)
                print(f"round {round_ + 1}, {users} users: "
                      + "; ".join(f"{k.split(',')[0]} {v:.2f}" for k, v in measured.items())
                      + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    print(f"median of {args.rounds} rounds")
    for key, values in found.items():
        print(f"{key:44} {statistics.median(values):10.2f}")


if __name__ == "__main__":
    main()

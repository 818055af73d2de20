"""A provider's HTTP client for a plain `http://` server: httpx's default against
`chronos.model._plain_http`'s, from `send` to the first body bytes of a streamed answer.

    .venv/bin/python bench/model_plain_http.py --requests 400
    .venv/bin/python bench/model_plain_http.py --requests 400 \\
        --also /work/main/src/chronos/model/_plain_http.py   # another checkout's client beside

The server (`ttft_stages.py`'s fake model, a process of its own, on uvloop) answers at once
and closes each connection after its answer, as llama.cpp's does, so every request connects.
The two clients alternate, on uvloop as `chronos serve` runs; medians of wall and CPU time
(`process_time`, this process) per request, the first 50 of each aside.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import uvloop

from chronos.model._plain_http import plain_http_client

_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'


async def _first_bytes(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    async with client.stream("POST", url, content=_BODY) as response:
        async for _ in response.aiter_bytes():
            break
    return (time.perf_counter_ns() - wall) / 1e3, (time.process_time_ns() - cpu) / 1e3


def _other_client(path: str, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """`plain_http_client` of the `_plain_http.py` at `path` (another checkout's)."""
    spec = importlib.util.spec_from_file_location("other_plain_http", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client: httpx.AsyncClient = module.plain_http_client(timeout)
    return client


async def _compare(url: str, requests: int, also: list[str]) -> None:
    timeout = httpx.Timeout(120, connect=10)
    clients = {"httpx default": httpx.AsyncClient(timeout=timeout),
               "plain_http_client": plain_http_client(timeout)}
    for i, path in enumerate(also):
        clients[f"also {i}"] = _other_client(path, timeout)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    for i in range(requests):
        names = list(clients)
        for name in names[i % len(names):] + names[:i % len(names)]:
            measured = await _first_bytes(clients[name], url)
            if i >= 50:
                results[name].append(measured)
    for name, values in results.items():
        print(f"  {name:18s} send -> first body bytes: wall median "
              f"{statistics.median(v[0] for v in values):6.0f} us, CPU median "
              f"{statistics.median(v[1] for v in values):6.0f} us")
    for client in clients.values():
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--also", action="append", default=[],
                        help="another checkout's chronos/model/_plain_http.py (repeatable)")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "ttft_stages.py"),
                               "_fake", str(port), "8"])
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"load before: {os.getloadavg()}")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_compare(f"http://127.0.0.1:{port}/v1/chat/completions", args.requests,
                                args.also))
        print(f"load after: {os.getloadavg()}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

"""A `runs.stream` request's path inside the server, from its first bytes to its `metadata` frame.

    .venv/bin/python bench/serve_first_event_path.py                       # this checkout
    .venv/bin/python bench/serve_first_event_path.py /work/main . --rounds 3   # A/B, alternating
    CHRONOS_INTERPRETED=1 .venv/bin/python bench/serve_first_event_path.py   # + where it waited

Each checkout's server (its own `.venv`; the benchmark graph `tests/server/graphs.py:agent`,
SQLite store in a temporary directory, in-process broker, uvloop: `chronos serve`'s defaults)
runs with stamps in uvicorn's httptools protocol: the request's first bytes parsed
(`on_message_begin`), its headers, its body complete, the app entered, and the first body
frame sent (the `metadata` event). Each stamp takes `perf_counter_ns` and an event-loop
iteration count: uvloop has no `_run_once` to count, so a `call_soon` callback that schedules
itself again counts the loop's rounds while a stream request is on its way (only then: it
keeps the loop from sleeping). The request's task is stepped through a wrapper that adds up
its thread CPU time and counts its steps until the metadata frame (a step after the first:
an await that suspended); interpreted (`CHRONOS_INTERPRETED=1`), it also names the innermost
coroutine at each suspension.

The client is `bench/serve_vs_langgraph.py`'s `first_event_latency`: 1 user streaming
`--one-user-runs` runs one after another, then 50 users (one process) streaming 2 runs each at
once. Prints, per phase, medians and p99 of the milliseconds and loop iterations.

`--instructions` counts instead, under valgrind (cachegrind), the instructions of a
`threads.create` and a `runs.stream` read to its end, through the app in process (no
sockets; a one-node graph, so that the request's own path is most of it): a count the load
of a shared machine does not move. The difference of 210 and 10 such pairs, per pair.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_vs_langgraph import first_event_latency
from tests.server.conformance_servers import script_server

_SERVER = r"""
import asyncio, json, sys, time
import uvloop
from uvicorn.protocols.http import httptools_impl as h
from chronos import server, store, stream
from tests.server.graphs import agent

records = []        # one dict per runs.stream request
in_flight = 0       # stream requests between first bytes and metadata
ticks = 0
ticking = False

def tick():
    global ticks, ticking
    ticks += 1
    if in_flight:
        asyncio.get_running_loop().call_soon(tick)
    else:
        ticking = False

def stamp(record, name):
    record[name] = (time.perf_counter_ns(), ticks)

begin, headers, complete = (h.HttpToolsProtocol.on_message_begin,
                            h.HttpToolsProtocol.on_headers_complete,
                            h.HttpToolsProtocol.on_message_complete)

def on_message_begin(self):
    begin(self)
    self._bench = {}
    stamp(self._bench, "bytes")

def on_headers_complete(self):
    global in_flight, ticking
    stamp(self._bench, "headers")
    headers(self)
    if self.scope.get("method") == "POST" and self.scope["path"].endswith("/runs/stream"):
        self.cycle._bench = record = self._bench
        record["cpu_ns"] = 0
        record["steps"] = 0
        record["waits"] = []
        records.append(record)
        in_flight += 1
        if not ticking:
            ticking = True
            asyncio.get_running_loop().call_soon(tick)

def on_message_complete(self):
    stamp(self._bench, "body")
    complete(self)

h.HttpToolsProtocol.on_message_begin = on_message_begin
h.HttpToolsProtocol.on_headers_complete = on_headers_complete
h.HttpToolsProtocol.on_message_complete = on_message_complete

send = h.RequestResponseCycle.send

async def send_stamped(self, message):
    global in_flight
    record = getattr(self, "_bench", None)
    if (record is not None and "metadata" not in record
            and message["type"] == "http.response.body"):
        stamp(record, "metadata")
        in_flight -= 1
    await send(self, message)

h.RequestResponseCycle.send = send_stamped

def innermost(coro):
    name = getattr(coro, "__qualname__", type(coro).__name__)
    while True:
        inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is None:
            return name
        coro = inner
        name = getattr(coro, "__qualname__", type(coro).__name__)

class Stepped:
    # The request task's coroutine, timed step by step until the metadata frame.
    def __init__(self, coro, record):
        self.coro, self.record = coro, record
    def __await__(self):
        return self
    def __iter__(self):
        return self
    def __next__(self):
        return self.send(None)
    def send(self, value):
        return self._step(self.coro.send, value)
    def throw(self, *args):
        return self._step(self.coro.throw, *args)
    def close(self):
        return self.coro.close()
    def _step(self, method, *args):
        record = self.record
        counting = "metadata" not in record
        start = time.thread_time_ns()
        try:
            return method(*args)
        finally:
            if counting:
                record["cpu_ns"] += time.thread_time_ns() - start
                record["steps"] += 1
                if "metadata" not in record:
                    record["waits"].append(innermost(self.coro))

run_asgi = h.RequestResponseCycle.run_asgi

async def run_asgi_stepped(self, app):
    record = getattr(self, "_bench", None)
    if record is None:
        return await run_asgi(self, app)
    stamp(record, "task")
    return await Stepped(run_asgi(self, app), record)

h.RequestResponseCycle.run_asgi = run_asgi_stepped

app = server.create_app({"agent": agent}, store=store.SQLiteStore(sys.argv[2] + "/p.db"),
                        broker=stream.Broker())
sock = server.bind("127.0.0.1", int(sys.argv[1]))
try:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve(app, sock))
except KeyboardInterrupt:
    pass
finally:
    with open(sys.argv[2] + "/records.json", "w") as out:
        json.dump([r for r in records if "metadata" in r], out)
"""

_IN_PROCESS = r"""
import asyncio, os, sys, tempfile
import orjson, uvloop
from chronos import graph, server, store, stream

async def answer(state):
    return {"done": True}

builder = graph.StateGraph("one", reducers={})
builder.add_node("answer", answer).set_entry_point("answer").set_finish_point("answer")

def scope(path):
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"x"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}

async def request(app, path, body):
    given, out = [], []
    async def receive():
        if given:  # then only a disconnect could come
            await asyncio.Event().wait()
        given.append(1)
        return {"type": "http.request", "body": body, "more_body": False}
    async def send(message):
        if message["type"] == "http.response.body":
            out.append(message["body"])
    await app(scope(path), receive, send)
    return b"".join(out)

async def main(count):
    with tempfile.TemporaryDirectory() as workdir:
        app = server.create_app({"one": builder.compile()},
                                store=store.SQLiteStore(workdir + "/s.db"), broker=stream.Broker())
        body = orjson.dumps({"assistant_id": "one", "input": {"topic": "f"},
                             "stream_mode": ["custom", "messages-tuple"]})
        async with app.router.lifespan_context(app):
            for _ in range(count):
                thread = orjson.loads(await request(app, "/threads", b"{}"))["thread_id"]
                await request(app, f"/threads/{thread}/runs/stream", body)

uvloop.run(main(int(sys.argv[1])))
"""


def _instructions(checkout: Path, count: int) -> int:
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            str(checkout / ".venv" / "bin" / "python"), "-c", _IN_PROCESS, str(count)]
    done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(checkout)},
                          capture_output=True, text=True, check=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert refs is not None, done.stderr
    return int(refs.group(1).replace(",", ""))


_PHASES = (  # (label, from stamp, to stamp)
    ("first bytes -> metadata sent", "bytes", "metadata"),
    ("  first bytes -> headers parsed", "bytes", "headers"),
    ("  headers -> request task's first step", "headers", "task"),
    ("  headers -> body complete", "headers", "body"),
    ("  body complete -> metadata sent", "body", "metadata"),
)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _summary(records: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Label -> (p50, p99)."""
    found: dict[str, tuple[float, float]] = {}
    for label, start, end in _PHASES:
        ms = [(r[end][0] - r[start][0]) / 1e6 for r in records]
        iterations = [float(r[end][1] - r[start][1]) for r in records]
        found[label + ", ms"] = (statistics.median(ms), _percentile(ms, 0.99))
        found[label + ", loop iterations"] = (statistics.median(iterations),
                                              _percentile(iterations, 0.99))
    cpu = [r["cpu_ns"] / 1e3 for r in records]
    steps = [float(r["steps"]) for r in records]
    found["request task CPU until metadata, us"] = (statistics.median(cpu), _percentile(cpu, 0.99))
    found["request task steps until metadata"] = (statistics.median(steps),
                                                  _percentile(steps, 0.99))
    return found


def _measure(checkout: Path, one_user_runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    python = checkout / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="chronos-first-event-") as workdir:
        calls = [(5, 2), (1, one_user_runs), (50, 2)]  # (users, streams each): a warm-up first
        with script_server(python, _SERVER, workdir, checkout) as url:
            for users, per_user in calls:
                asyncio.run(first_event_latency(url, users, per_user))
        records = json.loads(Path(workdir, "records.json").read_text())
    timed = []
    for users, per_user in calls:
        del records[:users]  # each user's untimed stream, its client readied
        timed.append(records[:users * per_user])
        del records[:users * per_user]
    _, one, fifty = timed
    waits = collections.Counter(w for r in fifty for w in r["waits"])
    if waits:
        print(f"  {checkout}: where the 50-user requests suspended before the metadata: "
              + ", ".join(f"{name} x{count}" for name, count in waits.most_common(6)))
    return {"1 user": _summary(one), "50 users": _summary(fifty)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[Path(".")])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one-user-runs", type=int, default=50)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    if args.instructions:
        for checkout in args.checkouts:
            per_pair = (_instructions(checkout, 210) - _instructions(checkout, 10)) / 200
            print(f"{checkout}: {per_pair:,.0f} instructions per threads.create + runs.stream",
                  flush=True)
        return
    results: dict[Path, list[dict[str, dict[str, tuple[float, float]]]]] = {
        c: [] for c in args.checkouts}
    for round_ in range(args.rounds):
        for checkout in args.checkouts:
            print(f"round {round_ + 1}, {checkout}: load {os.getloadavg()[0]:.2f}", flush=True)
            results[checkout].append(_measure(checkout, args.one_user_runs))
    for users in ("1 user", "50 users"):
        print(f"\n{users}: p50 / p99, median over {args.rounds} round(s)")
        labels = results[args.checkouts[0]][0][users]
        print(f"{'':48}" + "".join(f"{str(c)[-22:]:>24}" for c in args.checkouts))
        for label in labels:
            cells = []
            for checkout in args.checkouts:
                p50 = statistics.median(r[users][label][0] for r in results[checkout])
                p99 = statistics.median(r[users][label][1] for r in results[checkout])
                cells.append(f"{p50:10.2f} / {p99:9.2f}")
            print(f"{label:48}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()

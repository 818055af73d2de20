"""`chronos serve` against the reference LangGraph Agent Server (`langgraph dev`), in one run.

    .venv/bin/python bench/serve_vs_langgraph.py
    .venv/bin/python bench/serve_vs_langgraph.py --servers chronos reference-best --streams 200

Same graph (three nodes, a custom event from each, 200 streamed tokens: `tests/server/graphs.py`
and its LangGraph twin `tests/server/reference_graphs.py`), same client (the official Python
`langgraph-sdk`, one `get_client` per simulated user, in this process), each server a fresh
process on 127.0.0.1:

- runs/s through `runs.wait` (a new thread, then `runs.wait` on it) with 1 and 50 users,
  each user looping for `--duration` seconds, and per second the runs that ended and the CPU
  that other processes than the server and this one took (the machine's load, when shared);
  the clock starts once every user's client exists and has done one run (`wait_loops` says
  why), the same on every server;
- time from the `runs.stream` call to the first event the SDK yields (the `metadata` event)
  and to the first graph event (`plan`'s custom event), p50/p99, with 1 user streaming one
  run after another and with 50 users streaming at once; modes `custom` + `messages-tuple`;
  the 50 users in this process, then each in a process of its own (as separate clients are:
  in one process a stream's first event waits while it parses the other streams' tokens);
- `--streams` threads (1,000) with a stream open each, all at once, tokens `--token-delay`
  apart so the runs overlap: the server's RSS (its process tree) over its RSS before, per open
  stream, at its peak and when every stream has had its first event; and the events/s the
  SDK clients received from all of them together.

The client processes freeze what exists before each measure out of the garbage collector's
reach (`--client-gc freeze`, the default), as `timeit` disables the collector: a full
collection in a client walks the SDK's and this script's start-up objects and delays every
stream that client reads, which is the client's cost, not the server's.
`--client-gc default` leaves the collector as a client has it; `--client-gc freeze default`
measures the first-event latencies both ways (the rest in the first mode given): in the runs
of BENCHMARKS.md's "gcstream branch" against `chronos serve`, neither gave the lower p99
consistently.

Servers: `chronos` (`chronos serve`, defaults: SQLite store in its directory, in-process
broker); `reference-defaults` (`langgraph dev --no-browser --no-reload`, 10 runs at once per
worker, its queue polling every 0.5 s when idle); `reference-best`: the same with
`--n-jobs-per-worker 1000` (a run for every user at once; the in-memory runtime has no
setting for its poll interval: `langgraph_runtime_inmem.ops.Runs.next` sleeps 0.5 s). The
open streams are measured on `reference-best` and `chronos`; `--reference-streams-max`
caps the count on the reference: on a quiet machine its 1,000 streams took 3.5 minutes
(966 events/s), against Chronos's 18 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from langgraph_sdk import get_client
from tests.server.conformance_servers import ServedAPI, chronos_server, reference_server

GRAPH_ID = "agent"
STREAM_MODES = ["custom", "messages-tuple"]

SERVERS: dict[str, Callable[[], AbstractContextManager[ServedAPI]]] = {
    "chronos": chronos_server,
    "reference-defaults": reference_server,
    "reference-best": lambda: reference_server(jobs_per_worker=1000),
}


CLIENT_GC = ("freeze", "default")
MEASURES = ("rates", "latency", "streams")


def client_gc(mode: str) -> None:
    """Before a measure: `freeze` collects, then moves every object alive out of the
    collector's reach (the processes forked for users inherit it); `default` gives them back."""
    if mode == "freeze":
        gc.collect()
        gc.freeze()
    else:
        gc.unfreeze()


def _rss_kib(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclasses.dataclass(frozen=True)
class WaitLoops:
    """What `wait_loops` measured, on its clock only (the set-up before it left out)."""

    rate: float  # runs/s
    runs: int
    per_second: list[int]  # runs ended in each second after the clock started
    client_cpu: float  # seconds of this process's CPU time
    server_cpu: float | None  # seconds of the server process's, when its pid is given
    # Each second, the % of one core that processes other than these two took (a server's
    # child processes among them): a rate is the server's only where this stays near 0.
    others_cpu: list[float]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _others_cpu_seconds(server_pid: int | None) -> float:
    """CPU time the machine spent busy so far (/proc/stat), less this process's and the
    server's."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # not idle, iowait
    return busy - time.process_time() - (process_cpu_seconds(server_pid) if server_pid else 0.0)


async def _sample_others(server_pid: int | None, samples: list[float]) -> None:
    while True:
        samples.append(_others_cpu_seconds(server_pid))
        await asyncio.sleep(1.0)


async def _wait_once(client: Any) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], GRAPH_ID, input={"topic": "w"})


async def _wait_loop(client: Any, deadline: float, ends: list[float]) -> None:
    while time.monotonic() < deadline:
        await _wait_once(client)
        ends.append(time.monotonic())


async def wait_loops(url: str, users: int, duration: float,
                     server_pid: int | None = None) -> WaitLoops:
    """`users` SDK clients each looping on a new thread then `runs.wait` for `duration` s.

    The clock starts once every client exists and has done one run: `get_client` builds an
    httpx transport whose SSL context loads the CA bundle (22 ms of this process's CPU each,
    the event loop blocked), so 50 clients made inside the loops left 1.3-3.2 s at their
    start with no request sent, whatever the server. Made first, and each connection
    opened by one run, every server is measured from the same steady start.
    """
    clients = [get_client(url=url) for _ in range(users)]
    try:
        await asyncio.gather(*(_wait_once(client) for client in clients))
        server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
        client_before = time.process_time()
        ends: list[float] = []
        others: list[float] = []
        sampler = asyncio.create_task(_sample_others(server_pid, others))
        start = time.monotonic()
        await asyncio.gather(*(_wait_loop(client, start + duration, ends) for client in clients))
        # The last runs may end after the deadline: divide by the time they took.
        elapsed = time.monotonic() - start
        sampler.cancel()
        client_cpu = time.process_time() - client_before
        server_cpu = process_cpu_seconds(server_pid) - server_before if server_pid else None
    finally:
        for client in clients:
            await client.http.client.aclose()
    per_second = [0] * (int(elapsed) + 1)
    for end in ends:
        per_second[int(end - start)] += 1
    others_cpu = [100 * (after - before) for before, after in itertools.pairwise(others)]
    return WaitLoops(len(ends) / elapsed, len(ends), per_second, client_cpu, server_cpu,
                     others_cpu)


async def _stream_once(client: Any) -> tuple[float, float]:
    """Seconds from the `runs.stream` call to its first event, and to `plan`'s custom event."""
    thread = await client.threads.create()
    start = time.perf_counter()
    first = graph_first = 0.0
    async for part in client.runs.stream(
        thread["thread_id"], GRAPH_ID, input={"topic": "f"}, stream_mode=STREAM_MODES
    ):
        if not first:
            first = time.perf_counter() - start
        if part.event == "custom" and not graph_first:
            graph_first = time.perf_counter() - start
    return first, graph_first


async def _ready_client(url: str) -> Any:
    """A client that has made its SSL context and connected, by streaming one run untimed.

    As in `wait_loops`: made in the timed part, 50 clients' `get_client` calls (~22 ms of CPU
    each) would delay the first streams of every user, on any server.
    """
    client = get_client(url=url)
    await _stream_once(client)
    return client


async def _user_streams(client: Any, per_user: int) -> list[tuple[float, float]]:
    try:
        return [await _stream_once(client) for _ in range(per_user)]
    finally:
        await client.http.client.aclose()


async def first_event_latency(url: str, users: int, per_user: int,
                              server_pid: int | None = None) -> dict[str, float]:
    """Each user streams `per_user` runs one after another; all users in this process.

    The users start together once every client is ready (`_ready_client`). The CPU per stream
    (this process's, and the server's when `server_pid` is given) is counted from then on:
    the clients' readying runs are not in it.
    """
    clients = [await _ready_client(url) for _ in range(users)]
    cpu = time.process_time()
    server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
    streams = await asyncio.gather(*(_user_streams(client, per_user) for client in clients))
    figures = _latency_figures([sample for samples in streams for sample in samples])
    figures["client CPU ms per stream"] = 1000 * (time.process_time() - cpu) / figures["samples"]
    if server_pid:
        figures["server CPU ms per stream"] = (
            1000 * (process_cpu_seconds(server_pid) - server_cpu) / figures["samples"])
    return figures


def _process_user(url: str, per_user: int, start: Any, results: Any) -> None:
    async def user() -> list[tuple[float, float]]:
        client = await _ready_client(url)
        start.wait()
        return await _user_streams(client, per_user)

    try:
        results.put(asyncio.run(user()))
    except BaseException as exc:
        # Said, not lost: the parent waits for one result from each user.
        results.put(f"{type(exc).__name__}: {exc}")
        raise


def first_event_latency_per_process(url: str, users: int, per_user: int) -> dict[str, float]:
    """As `first_event_latency`, each user in a process of its own, as separate clients are.

    Every process makes its client ready (`_ready_client`) before the users start together.

    With all users in one process, a stream's first event waits in its socket while that
    process parses the other streams' tokens (at 50 users its one core is busy throughout):
    the figure then measures the client as much as the server.
    """
    context = multiprocessing.get_context("fork")  # the SDK is imported already
    start = context.Barrier(users + 1)
    results = context.SimpleQueue()
    processes = [context.Process(target=_process_user, args=(url, per_user, start, results))
                 for _ in range(users)]
    for process in processes:
        process.start()
    start.wait()
    per_process = [results.get() for _ in processes]
    for process in processes:
        process.join()
    failures = [result for result in per_process if isinstance(result, str)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {users} users failed, the first with {failures[0]}")
    return _latency_figures([sample for samples in per_process for sample in samples])


def _latency_figures(samples: list[tuple[float, float]]) -> dict[str, float]:
    first = [sample[0] for sample in samples]
    graph_first = [sample[1] for sample in samples]
    return {
        "samples": len(samples),
        "first p50 ms": 1000 * statistics.median(first),
        "first p99 ms": 1000 * _percentile(first, 0.99),
        "graph p50 ms": 1000 * statistics.median(graph_first),
        "graph p99 ms": 1000 * _percentile(graph_first, 0.99),
    }


async def open_streams(api: ServedAPI, count: int, token_delay: float) -> dict[str, float]:
    # Threads made through one client, so that no stream starts on a kept-alive connection
    # that the server may have closed meanwhile (a race every HTTP client has).
    setup = get_client(url=api.url)
    threads = [(await setup.threads.create())["thread_id"] for _ in range(count)]
    await setup.http.client.aclose()
    clients = [get_client(url=api.url) for _ in range(count)]
    await asyncio.sleep(1.0)
    idle_kib = _rss_kib(api.pid)
    received = 0
    started = 0
    all_open = asyncio.Event()
    peak_kib = idle_kib
    open_kib = idle_kib

    async def watch_memory() -> None:
        nonlocal peak_kib, open_kib
        while True:
            rss = _rss_kib(api.pid)
            peak_kib = max(peak_kib, rss)
            if all_open.is_set() and open_kib == idle_kib:
                open_kib = rss
            await asyncio.sleep(0.1)

    failed = 0

    async def stream(client: Any, thread_id: str) -> None:
        nonlocal received, started, failed
        first = True
        try:
            async for _part in client.runs.stream(
                thread_id, GRAPH_ID, input={"topic": "o", "token_delay": token_delay},
                stream_mode=STREAM_MODES,
            ):
                received += 1
                if first:
                    first = False
                    started += 1
                    if started == count:
                        all_open.set()
        except httpx.HTTPError as exc:
            failed += 1
            print(f"  a stream failed: {exc!r}", flush=True)

    watcher = asyncio.create_task(watch_memory())
    start = time.monotonic()
    try:
        await asyncio.gather(*(stream(c, t) for c, t in zip(clients, threads, strict=True)))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    elapsed = time.monotonic() - start
    for client in clients:
        await client.http.client.aclose()
    return {
        "idle MiB": idle_kib / 1024,
        "KiB/stream when all open": (open_kib - idle_kib) / count,
        "KiB/stream at peak": (peak_kib - idle_kib) / count,
        "events": received,
        "failed streams": failed,
        "events/s": received / elapsed,
        "seconds": elapsed,
    }


@contextlib.contextmanager
def _server(name: str) -> Iterator[ServedAPI]:
    with SERVERS[name]() as api:
        # One run first, so that imports and first-call caches are not measured.
        async def warm_up() -> None:
            client = get_client(url=api.url)
            thread = await client.threads.create()
            await client.runs.wait(thread["thread_id"], GRAPH_ID, input={"topic": "warm"})
            await client.http.client.aclose()

        asyncio.run(warm_up())
        yield api


def _print(server: str, measure: str, figures: dict[str, float]) -> None:
    shown = "  ".join(
        f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in figures.items()
    )
    print(f"{server:<20} {measure:<36} {shown}", flush=True)


def _request_measures(name: str, api: ServedAPI, args: argparse.Namespace) -> None:
    """The `runs.wait` rates and the first-event latencies, on one server process."""
    for users in (1, args.concurrency) if "rates" in args.measures else ():
        client_gc(args.client_gc[0])
        loops = asyncio.run(wait_loops(api.url, users, args.duration, api.pid))
        _print(name, f"runs.wait, {users} users", {"runs/s": loops.rate})
        print(f"{'':<20} {'runs ended in each second':<36} {loops.per_second}", flush=True)
        print(f"{'':<20} {'other processes, % of a core':<36} "
              f"{[round(cpu) for cpu in loops.others_cpu]}", flush=True)
    for mode in args.client_gc if "latency" in args.measures else ():
        client_gc(mode)
        single = asyncio.run(first_event_latency(api.url, 1, args.latency_runs))
        _print(name, f"first event, 1 user, gc {mode}", single)
        client_gc(mode)
        crowd = asyncio.run(first_event_latency(api.url, args.concurrency, args.crowd_runs))
        _print(name, f"first event, {args.concurrency} users, gc {mode}", crowd)
        client_gc(mode)
        apart = first_event_latency_per_process(api.url, args.concurrency, args.crowd_runs)
        _print(name, f"first event, {args.concurrency} procs, gc {mode}", apart)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per runs/s")
    parser.add_argument("--latency-runs", type=int, default=100,
                        help="streams of the single user")
    parser.add_argument("--crowd-runs", type=int, default=2,
                        help="streams of each of the 50 users, one after another")
    parser.add_argument("--streams", type=int, nargs="+", default=[200, 1000],
                        help="open streams at once, one measure per count")
    parser.add_argument("--reference-streams-max", type=int, default=1000,
                        help="the largest count measured on the reference")
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--client-gc", nargs="+", choices=CLIENT_GC, default=["freeze"],
                        help="the clients' garbage collector (see above)")
    parser.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                        help="which measures to take (all by default)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    for name in args.servers:
        if {"rates", "latency"} & set(args.measures):
            with _server(name) as api:
                _request_measures(name, api, args)
        if name == "reference-defaults" or "streams" not in args.measures:
            continue
        for count in args.streams:
            if name.startswith("reference") and count > args.reference_streams_max:
                continue
            with _server(name) as api:
                client_gc(args.client_gc[0])
                figures = asyncio.run(open_streams(api, count, args.token_delay))
                _print(name, f"{count} open streams", figures)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()

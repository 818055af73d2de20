"""`chronos serve`: graphs behind the LangGraph Agent Server API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from chronos.cli._common import Commands, Terminal, add_store_option, store_url
from chronos.cli._run import _load_graph
from chronos.config import BROKER_URL_ENV, DEFAULT_BROKER_URL
from chronos.errors import ConfigurationError
from chronos.graph import CompiledGraph

__all__ = ["add_serve"]


def add_serve(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve graphs through the LangGraph Agent Server API",
        description="Serve graphs over HTTP with the API the LangGraph SDKs speak "
        "(assistants, threads, runs, streams). A graph is served under its own id "
        "(StateGraph('agent') as 'agent'), or under --id.",
    )
    parser.add_argument("graphs", nargs="+", metavar="MODULE:GRAPH",
                        help="a StateGraph or compiled graph, e.g. myapp.agents:graph")
    parser.add_argument("--id", action="append", default=[], dest="ids", metavar="ID",
                        help="the id to serve a graph under, once per graph, in order")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8123, help="port to listen on (8123)")
    parser.add_argument("--broker", help=f"broker URL (env: {BROKER_URL_ENV}; default "
                                         f"{DEFAULT_BROKER_URL}); with redis://, thread and "
                                         "run records are kept there too")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes on the port (above 1 needs --broker redis://)")
    parser.add_argument("--runs-per-thread", type=int, default=100, metavar="N",
                        help="finished runs kept per thread, the newest (100)")
    parser.add_argument("--max-threads", type=int, default=100_000, metavar="N",
                        help="idle threads beyond it are forgotten, least recently changed first "
                             "(100000)")
    parser.add_argument("--thread-ttl", type=float, default=None, metavar="SECONDS",
                        help="forget idle threads unchanged for this long (default: never)")
    add_store_option(parser)
    parser.set_defaults(run=_serve)


def _served(args: argparse.Namespace) -> dict[str, CompiledGraph]:
    if len(args.ids) > len(args.graphs):
        raise ConfigurationError(f"{len(args.ids)} --id for {len(args.graphs)} graphs")
    graphs: dict[str, CompiledGraph] = {}
    for index, target in enumerate(args.graphs):
        compiled = _load_graph(target)
        graph_id = args.ids[index] if index < len(args.ids) else compiled.id
        if graph_id in graphs:
            raise ConfigurationError(f"two graphs would be served as {graph_id!r}; use --id")
        graphs[graph_id] = compiled
    return graphs


def _serve(args: argparse.Namespace, terminal: Terminal) -> int:
    from chronos import config, server  # the web stack loads for this command only

    graphs = _served(args)
    retention = server.Retention(runs_per_thread=args.runs_per_thread,
                                 max_threads=args.max_threads, thread_ttl=args.thread_ttl)
    broker_url = args.broker or os.environ.get(BROKER_URL_ENV) or DEFAULT_BROKER_URL
    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if args.workers > 1 and not server.shares_records(broker_url):
        raise ConfigurationError("--workers above 1 needs a shared broker: --broker "
                                 "redis://... (and a store every process reaches)")
    sock = server.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{sock.getsockname()[1]}"

    def ready() -> None:
        terminal.out.print(f"chronos serve: {', '.join(graphs)} on {url}  (Ctrl-C to stop)",
                           highlight=False)

    async def run(on_ready: Callable[[], None]) -> None:
        broker, checkpoints = config.from_urls(broker_url, store_url(args))
        records = server.records_for(broker_url)
        app = server.create_app(graphs, store=checkpoints, broker=broker, records=records,
                                 retention=retention)
        try:
            await server.serve(app, sock, on_ready=on_ready)
        finally:
            await app.aclose()
            await records.aclose()
            await broker.aclose()
            await checkpoints.aclose()

    try:
        children = _fork_workers(args.workers - 1)
        if children is None:  # a worker: serve, then leave without running the parent's code
            _run_loop(run(lambda: None))
            os._exit(0)
        if children:
            # uvicorn re-raises the SIGTERM it handled once it has shut down; here that
            # must not end the process before its workers are stopped.
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
        try:
            _run_loop(run(ready))
        finally:
            _stop_workers(children)
    finally:
        sock.close()
    return 0


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop's event loop where it is installed (not on Windows), as
    `uvicorn.run` and LangGraph's server do, else on asyncio's: a served run takes a loop
    iteration per model token, which costs uvloop a fraction of what it costs asyncio
    (BENCHMARKS.md, "Agent Server API")."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def _fork_workers(count: int) -> list[int] | None:
    """Fork `count` more processes serving the same listening socket (None in a child).

    They share nothing else: runs and threads meet through the broker, the store and the
    records in Redis.
    """
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            return None
        children.append(pid)
    return children


def _stop_workers(children: list[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

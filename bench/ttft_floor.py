"""What Chronos's layers add to time-to-first-token, layer by layer, and what none can save.

    .venv/bin/python bench/ttft_floor.py --rounds 80

One served process (uvicorn on uvloop, as `chronos serve` runs: the app `create_app` builds,
memory store and broker, the process frozen out of the collector's reach once serving) answers
the same streamed request on four routes, with one `LlamaCppProvider` (the `in_process`
graph's model: same GGUF and settings as llama.cpp's own server):

- `/v1/chat/completions`: the OpenAI dialect, as `chronos serve` answers it (a stateless run
  through the server's runs and broker).
- `/hub/v1/chat/completions`: the same stateless run through the server's `Runs.start`
  (records, metrics, cancellation as for the dialect), its tokens read from the run's own hub
  (`runner.stream("messages")` of the runner `Runs` uses) rather than the broker, which gets
  the graph's few per-node events but no tokens, and which no one reads (a prototype).
- `/direct/v1/chat/completions`: the same graph, run by a `graph.Runner` of its own (no store,
  no broker) and read from `runner.stream("messages")`, its tokens written as the dialect
  writes them. A prototype of a stateless dialect run that skips the server's runs, records
  and broker, measured only here: `chronos serve` has no such route.
- `/floor/v1/chat/completions`: no graph, no run: the request's last message given to the
  provider (its request made before the response's head, as a run's is), its chunks written
  as the dialect writes them. What is left of Chronos around the
  model (uvicorn, Starlette, the provider's worker thread and its hand-off to the loop): no
  change above the provider can take a first token below this side's.

Each round, the `openai` SDK streams the same greedy answer (checked) from the four routes and
four times from llama.cpp's own server, so that both models run equally often (the three
repeats are the noise floor: what the same side differs from itself), in a shuffled order
(a rotated one would have each side follow the same side every round, and so find its
server's caches warm or cold every round), each request once every process has gone idle
(`dialect_openai.py ttft`'s method). Reported: medians, and each side's median difference to
llama.cpp's server per round with a 95 % bootstrap interval. For the four routes, also the
served process's event loop (its main thread) from `create()` to the SDK's first text, as
`ttft_threads.py` reads it from `/proc/.../schedstat`: its CPU time, the part of the request
that differs between the routes (the model's threads do the same work on each), and its
run-queue wait. A wall-clock difference needs a quiet machine; these CPU times compare
between the routes of one run on a busy one too.

Last, where each route's time goes, by the served process's own clock (`_Stages`): from the
app called to the model's request, then to the model's first chunk taken on the loop, then to
the first text written. The first and last spans are what the layers add on the way; the
model's span, the same work on every route, is where the machine's noise is. The SDK's TTFT
adds the client's side and the network to these spans, the same for every route.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import openai
import orjson
from bench import dialect_openai_graphs as graphs
from bench.dialect_openai import (
    _DIRECT,
    _DIRECT_AGAIN,
    _first_token,
    _load,
    model_server_process,
    paired_ttft,
    served_process,
)
from bench.ttft_threads import Sample, _threads

_DIALECT = "chronos /v1/chat/completions"
_HUB = "chronos, runs, tokens from the run's hub"
_RUNNER = "chronos, graph without runs or broker"
_FLOOR = "chronos, provider alone"


def _app() -> Any:
    """The served app: `create_app`'s, with the measuring routes before it."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from chronos import config, graph, server
    from chronos.server._run_request import parse_run_request
    from chronos.server._stream import StreamInRequestTask
    from chronos.server.dialects._openai_chat import ChatCompletion

    broker, checkpoints = config.from_urls("memory://", "memory://")
    records = server.records_for("memory://")
    dialect_app = server.create_app({"in_process": graphs.in_process}, store=checkpoints,
                                    broker=broker, records=records)
    provider = graphs.in_process_provider()
    runner = graph.Runner(graphs.in_process.compile())

    async def floor(request: Request) -> Response:
        body = orjson.loads(await request.body())
        completion = ChatCompletion(f"chatcmpl-{uuid.uuid4()}", body["model"])
        stream = provider.stream_chat(graphs.chat_request(body))
        chunks = await stream.__aenter__()
        # The model's request goes before the response's head, as a run's does (`start_run`).
        first = asyncio.ensure_future(anext(chunks))
        await asyncio.sleep(0)

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield completion.first_chunk()
                chunk = await first
                while True:
                    if chunk.content:
                        yield completion.chunk({"content": chunk.content})
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                yield completion.last_chunks()
            finally:
                first.cancel()
                await stream.__aexit__(None, None, None)

        return StreamInRequestTask(frames(), media_type="text/event-stream")

    async def token_chunks(events: Any, completion: ChatCompletion) -> AsyncIterator[bytes]:
        """A `runner.stream("messages")`'s tokens as the dialect's chunks."""
        async for event in events:
            if event.type == "token":
                delta = completion.delta({"content": event.data.content,
                                          "message_id": event.data.message_id})
                if delta is not None:
                    yield completion.chunk(delta)

    async def direct(request: Request) -> Response:
        body = orjson.loads(await request.body())
        completion = ChatCompletion(f"chatcmpl-{uuid.uuid4()}", body["model"])
        session = uuid.uuid4().hex
        events = runner.stream("messages", session_id=session)
        run = asyncio.create_task(runner.run(session, {"messages": body["messages"]}))
        await asyncio.sleep(0)  # the run goes first, up to its model's request, as start_run

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield completion.first_chunk()
                async for chunk in token_chunks(events, completion):
                    yield chunk
                await run
                yield completion.last_chunks()
            finally:
                run.cancel()

        return StreamInRequestTask(frames(), media_type="text/event-stream")

    runs = dialect_app._runs
    served = runs.assistants.find("in_process")
    hub_runner = runs.assistants.runner(served)

    async def hub(request: Request) -> Response:
        body = orjson.loads(await request.body())
        thread = await runs.threads.new(request, metadata={"graph_id": served.graph_id,
                                                           "assistant_id": served.assistant_id},
                                        temporary=True)
        asked = parse_run_request({"assistant_id": "in_process", "stream_mode": ["custom"],
                                   "input": {"messages": body["messages"]},
                                   "on_disconnect": "cancel", "durability": "exit"},
                                  default_disconnect="cancel")
        events = hub_runner.stream("messages", session_id=thread.thread_id)
        record = await runs.start(thread, asked, keep_paused=True, unseen=True)
        await asyncio.sleep(0)
        completion = ChatCompletion(f"chatcmpl-{record.run_id}", body["model"])

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield completion.first_chunk()
                async for chunk in token_chunks(events, completion):
                    yield chunk
                await record.done.wait()
                yield completion.last_chunks()
            finally:
                if not record.done.is_set():
                    runs.request_cancel(record.info())

        return StreamInRequestTask(frames(), media_type="text/event-stream")

    measuring = {"/floor/v1/chat/completions": Route("/", floor, methods=["POST"]),
                 "/hub/v1/chat/completions": Route("/", hub, methods=["POST"]),
                 "/direct/v1/chat/completions": Route("/", direct, methods=["POST"])}

    stages = _Stages()

    async def report_stages(request: Request) -> Response:
        return Response(orjson.dumps(stages.taken()), media_type="application/json")

    measuring["/stages"] = Route("/", report_stages, methods=["GET"])

    class App:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            route = measuring.get(path) if scope["type"] == "http" else None
            if path.endswith("/chat/completions"):
                send = stages.arrived(path, send)
            if route is None:
                await dialect_app(scope, receive, send)
            else:
                await route.handle(scope, receive, send)

        async def aclose(self) -> None:
            await dialect_app.aclose()

    return App()


class _Stages:
    """When each streamed request of the served process reached four points, by the process's
    clock: the app called (`arrived`), the model's request made (its job handed to the
    provider's worker thread), the first chunk taken from the worker on the loop, and the
    first text written to the response. Requests run one at a time, so the marks are the
    current request's. The two model marks wrap the provider's hand-off: a few microseconds,
    the same on every route.
    """

    def __init__(self) -> None:
        from chronos.model import _handoff

        self._marks: list[dict[str, Any]] = []
        marks = self._marks
        run, receive = _handoff.Workers.run, _handoff.ThreadHandoff.receive

        def marked_run(workers: Any, job: Any) -> None:
            marks[-1].setdefault("model_request", time.perf_counter())
            run(workers, job)

        async def marked_receive(handoff: Any) -> Any:
            item = await receive(handoff)
            marks[-1].setdefault("first_chunk", time.perf_counter())
            return item

        _handoff.Workers.run = marked_run
        _handoff.ThreadHandoff.receive = marked_receive

    def arrived(self, path: str, send: Any) -> Any:
        """Start a request's marks; its `send`, marking the first text written."""
        current = {"path": path, "arrived": time.perf_counter()}
        self._marks.append(current)

        async def marked_send(message: Any) -> None:
            body = message.get("body", b"")
            if b'"content":"' in body and b'"content":""' not in body:
                current.setdefault("first_text", time.perf_counter())
            await send(message)

        return marked_send

    def taken(self) -> list[dict[str, Any]]:
        """The marks of the requests since the last call."""
        taken = list(self._marks)
        self._marks.clear()
        return taken


def _print_stages(marks: list[dict[str, Any]], routes: dict[str, str]) -> None:
    """Medians, per route, of the time from one mark to the next, and their sum."""
    print("  the served process, request by request, medians in ms: app called -> model's "
          "request -> first chunk on the loop -> first text written (all)")
    for name, prefix in routes.items():
        mine = [m for m in marks if m["path"] == f"{prefix}/v1/chat/completions"
                and "first_text" in m]
        if not mine:
            continue
        spans = [[m[b] - m[a] for m in mine] for a, b in
                 (("arrived", "model_request"), ("model_request", "first_chunk"),
                  ("first_chunk", "first_text"), ("arrived", "first_text"))]
        before, model, after, whole = (statistics.median(v) * 1e3 for v in spans)
        print(f"  {name:40s} {before:6.3f} + {model:6.2f} + {after:6.3f} = {whole:6.2f}")


def _serve(port: int) -> None:
    """The child of `_serving`: serve until SIGTERM, on uvloop, as `chronos serve` does."""
    from chronos import server
    from chronos.cli._serve import _run_loop

    sock = server.bind("127.0.0.1", port)

    async def run() -> None:
        await server.serve(_app(), sock)

    _run_loop(run())


def _serving() -> AbstractContextManager[tuple[str, int]]:
    """The server of `_app()` in a process of its own: its URL and pid while the block runs."""
    return served_process(lambda port: [sys.executable, __file__, "_serve", str(port)], "/ok",
                          "the server")


def measure(rounds: int, max_tokens: int) -> None:
    os.environ["CHRONOS_BENCH_MAX_TOKENS"] = str(max_tokens)
    options = {"max_tokens": max_tokens, "temperature": 0.0, "seed": graphs.SEED}
    print(f"load before: {_load()}")
    with model_server_process() as (model_url, model_pid), _serving() as (url, served_pid):
        direct = openai.OpenAI(base_url=model_url, api_key="unused", max_retries=0)

        def client(prefix: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{url}{prefix}/v1", api_key="unused", max_retries=0)

        clients = {_DIALECT: client(""), _HUB: client("/hub"), _RUNNER: client("/direct"),
                   _FLOOR: client("/floor")}
        # llama.cpp's server answers as often as the model in Chronos's process does: a model,
        # and the process around it, that runs more often finds more of its code and data in
        # the caches, and answers the sooner.
        sides = {_DIRECT: lambda: _first_token(direct, "smollm2", **options),
                 **{f"{_DIRECT_AGAIN} ({n})": lambda: _first_token(direct, "smollm2", **options)
                    for n in range(1, len(clients))},
                 _DIALECT: lambda: with_cpu(_DIALECT),
                 _HUB: lambda: with_cpu(_HUB),
                 _RUNNER: lambda: with_cpu(_RUNNER),
                 _FLOOR: lambda: with_cpu(_FLOOR)}
        pids = (os.getpid(), model_pid, served_pid)
        cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}

        def with_cpu(name: str) -> tuple[float, str]:
            taken: list[Sample] = []
            before = _threads(served_pid)
            first, text = _first_token(clients[name], "in_process",
                                       at_first=lambda: taken.append(_threads(served_pid)))
            loop = (served_pid, served_pid)
            cpu[name].append(((taken[0][loop][0] - before[loop][0]) / 1e6,
                              (taken[0][loop][1] - before[loop][1]) / 1e6))
            return first, text

        for side in sides.values():  # warm-up: connections, the models' prompt caches
            side()
            side()
        httpx.get(f"{url}/stages")  # the warm-up's marks, left out
        paired_ttft(sides, pids, rounds, (_DIRECT,))
        stages = httpx.get(f"{url}/stages").json()
    print(f"load after: {_load()}; {rounds} rounds, {max_tokens} tokens, same text on all sides")
    print("  the served process's event loop up to the first text, medians: CPU / run-queue "
          "wait, ms")
    for name, samples in cpu.items():
        loop, wait = (statistics.median(v) for v in zip(*samples, strict=True))
        print(f"  {name:40s} {loop:5.2f} / {wait:5.2f}")
    _print_stages(stages, {_DIALECT: "", _HUB: "/hub", _RUNNER: "/direct", _FLOOR: "/floor"})


def main() -> None:
    if sys.argv[1:2] == ["_serve"]:
        _serve(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    measure(args.rounds, args.max_tokens)


if __name__ == "__main__":
    main()

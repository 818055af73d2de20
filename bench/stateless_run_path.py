"""A stateless OpenAI-dialect run's path through the app in process: instructions, and stages.

    .venv/bin/python bench/stateless_run_path.py /work/main .     # instructions per request
    .venv/bin/python bench/stateless_run_path.py . --stages        # medians of stage stamps, µs
    .venv/bin/python bench/stateless_run_path.py /work/main . --messages 20   # a longer chat
    .venv/bin/python bench/stateless_run_path.py . --stages --redis-records redis://127.0.0.1:6379/0
    .venv/bin/python bench/stateless_run_path.py . --stages --evict 64    # each request cold

A streamed `/v1/chat/completions` request, called on the app as an ASGI app (no sockets,
no uvicorn), read to its end: the graph's one node streams a chat from an `OpenAIProvider`
whose `httpx` client answers through a `MockTransport` (the provider's own request building
and response reading run, not the network), its first bytes after the loop is free once (the
model's prompt evaluation), two tokens, the second after the loop is free again. The client
gets what the provider's own client gets in the checkout (`cookies_when_set` where it exists).
Memory store, in-process broker, uvloop, the checkout's compiled build as it stands.

Default: each checkout's `.venv` runs 110 and 10 requests under valgrind (cachegrind); the
difference over 100 is the instructions of one request, a count the load of a shared machine
does not move (repeatable to ~0.5% here). `--stages`: this interpreter runs 2,100 requests
stamping `perf_counter_ns` (as `bench/ttft_stages.py` does over HTTP) at the ASGI call, the
body read, `start_run`, `Runs.start` and its return, the run's task, `call_runner`, the node,
the model's request handed to the transport, its first token's bytes read, the token's
publication, the dialect's reader having it, and its chunk handed to the ASGI `send`; medians
of the last 2,000, in µs (a wall clock: read them on a quiet machine). `--evict MB`: before
each request, write that many MB of memory and leave the loop idle for 2 ms, as a served
request meets the caches after a model's generation has run through them (64 MB: the stages
of `bench/ttft_stages.py --in-process`); 300 requests after 50 unmeasured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._run_stamps import stamp_run_path


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    import orjson

    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


_stamps: dict[str, int] = {}
_RECORDS_PREFIX = f"bench-{os.getpid()}:"  # `--redis-records`: this process's keys


def _stamp(name: str) -> None:
    if name not in _stamps:
        _stamps[name] = time.perf_counter_ns()


def _app(stamped: bool, records_url: str | None = None) -> Any:
    import httpx

    from chronos import graph, model, server, store, stream
    from chronos.model.openai import OpenAIProvider

    first = _chunk({"role": "assistant", "content": None}) + _chunk({"content": " t0"})
    rest = _chunk({"content": " t1"}) + _chunk({}, "stop") + b"data: [DONE]\n\n"

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            await asyncio.sleep(0)  # the model's prompt evaluation: the loop is free
            if stamped:
                _stamp("token_read")
            yield first
            await asyncio.sleep(0)
            yield rest

    async def answer(request: httpx.Request) -> httpx.Response:
        if stamped:
            _stamp("written")
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    try:
        from chronos.model._cookies import cookies_when_set
        client = cookies_when_set(client)
    except ImportError:  # a checkout before it
        pass
    provider = OpenAIProvider("m", base_url="http://model.local/v1", api_key="unused",
                              http_client=client)

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        if stamped:
            _stamp("node")
        request = model.ChatRequest(
            messages=[model.Message(role="user", content=state["messages"][-1]["content"])],
            max_tokens=8)
        response = await graph.stream_chat(provider, request)
        return {"messages": [{"role": "assistant", "content": response.content}]}

    g = graph.StateGraph("local", reducers={"messages": graph.append})
    g.add_node("answer", ask).set_entry_point("answer").set_finish_point("answer")
    # Redis records (`--redis-records`): as `chronos serve --broker redis://...` keeps them,
    # under a prefix of this process's own.
    records = (None if records_url is None else
               server.RedisRecords(records_url, key_prefix=_RECORDS_PREFIX))
    return server.create_app({"local": g}, store=store.MemoryStore(), broker=stream.Broker(),
                             records=records)


async def _request(app: Any, body: bytes, stamped: bool) -> bytes:
    given: list[int] = []
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if given:  # then only a disconnect could come
            await asyncio.Event().wait()
        given.append(1)
        if stamped:
            _stamp("body")
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if stamped and b'" t0"' in message["body"]:
                _stamp("token_send")
            out.append(message["body"])

    path = "/v1/chat/completions"
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"x"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    if stamped:
        _stamp("asgi")
    await app(scope, receive, send)
    return b"".join(out)


def _body(messages: int) -> bytes:
    """The request: "hi", after `messages` - 1 earlier turns of 400 characters each (a client
    of the OpenAI API sends the whole conversation every time)."""
    import orjson

    earlier = [{"role": ("user", "assistant")[i % 2], "content": f"turn {i} " + "x" * 393}
               for i in range(messages - 1)]
    return orjson.dumps({"model": "local", "stream": True,
                         "messages": [*earlier, {"role": "user", "content": "hi"}]})


async def _requests(count: int, messages: int) -> None:
    app = _app(stamped=False)
    body = _body(messages)
    async with app.router.lifespan_context(app):
        for _ in range(count):
            out = await _request(app, body, stamped=False)
        assert out.endswith(b"data: [DONE]\n\n"), out


def _instructions(checkout: Path, count: int, messages: int) -> int:
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            str(checkout / ".venv" / "bin" / "python"), __file__, "_requests", str(count),
            str(messages)]
    done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(checkout)},
                          capture_output=True, text=True, check=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert refs is not None, done.stderr
    return int(refs.group(1).replace(",", ""))


# (from stamp, to stamp), in path order.
_STAGES = [("asgi", "body"), ("body", "start_run"), ("start_run", "runs_start"),
           ("runs_start", "runs_start_end"), ("execute", "call_runner"),
           ("call_runner", "node"), ("node", "written"), ("asgi", "written"),
           ("token_read", "token_publish"), ("token_publish", "token_batch"),
           ("token_batch", "token_send"), ("token_read", "token_send")]


def _stages(count: int, messages: int, records_url: str | None, evict_mb: int) -> None:
    import uvloop

    stamp_run_path(_stamp)
    evicted = bytearray(evict_mb * 1_000_000)
    zeros = bytes(len(evicted))

    async def main() -> list[dict[str, int]]:
        app = _app(stamped=True, records_url=records_url)
        body = _body(messages)
        rows = []
        async with app.router.lifespan_context(app):
            warm_up = 50 if evict_mb else 100
            for i in range(count + warm_up):
                if evict_mb:
                    evicted[:] = zeros
                    await asyncio.sleep(0.002)
                _stamps.clear()
                await _request(app, body, stamped=True)
                if i >= warm_up:
                    rows.append(dict(_stamps))
        return rows

    rows = uvloop.run(main())
    if records_url is not None:  # what the runs left there (their threads' collection)
        import redis

        client = redis.Redis.from_url(records_url)
        for key in client.scan_iter(_RECORDS_PREFIX + "*"):
            client.delete(key)
    for start, end in _STAGES:
        median = statistics.median(r[end] - r[start] for r in rows) / 1000
        print(f"{start:>15} -> {end:<15} {median:8.1f} µs")


def main() -> None:
    if sys.argv[1:2] == ["_requests"]:
        import uvloop

        uvloop.run(_requests(int(sys.argv[2]), int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[Path(".")])
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--messages", type=int, default=1,
                        help="the conversation's messages in each request (default 1)")
    parser.add_argument("--redis-records", metavar="URL",
                        help="with --stages: the server's records in Redis (redis://...)")
    parser.add_argument("--evict", type=int, default=0, metavar="MB",
                        help="with --stages: write MB of memory before each request (cold)")
    args = parser.parse_args()
    if args.stages:
        _stages(300 if args.evict else 2000, args.messages, args.redis_records, args.evict)
        return
    for checkout in args.checkouts:
        per_request = (_instructions(checkout, 110, args.messages)
                       - _instructions(checkout, 10, args.messages)) / 100
        print(f"{checkout}: {per_request:,.0f} instructions per stateless chat request "
              f"of {args.messages} message(s)", flush=True)


if __name__ == "__main__":
    main()

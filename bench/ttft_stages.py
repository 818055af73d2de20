"""Where the OpenAI dialect's time to first token goes: stage timestamps across the served path.

    .venv/bin/python bench/ttft_stages.py --rounds 40
    .venv/bin/python bench/ttft_stages.py --rounds 40 --python /work/main/.venv/bin/python \\
        --python .venv/bin/python            # two checkouts side by side, rounds interleaved

Each `--python` (default: this one) serves `/v1/chat/completions` on uvloop, as `chronos serve`
does, from a process of its own running this file with that interpreter (so with its
checkout's chronos), memory store and in-process broker, the graph's one node streaming from
the local model's OpenAI-compatible server (llama.cpp through xllamacpp, as
`dialect_openai.py ttft` uses; `--fake`: a server of this file's answering at once, closing
each connection after its answer as llama.cpp's does; `--in-process`: the node runs the same
model itself, `LlamaCppProvider` with the model server's settings). The `openai` SDK reads
each side and the model's server directly in every round, in rotating order.

The served process stamps `time.perf_counter_ns()` (one monotonic clock for every process)
at: the app's ASGI call, the request body read, the dialect's `start_run` and `Runs.start`
(entry and return), the run's task starting (`Runs._execute`), the runner being called
(`call_runner`), the node starting, the provider's connection being opened and made, the
request's bytes written, the response's first bytes and first token read, the broker's
`run_start` and first `token` publication, the first token batch reaching the dialect's
reader, the response's start and first token chunk handed to uvicorn, and the app's return;
with each, the process's CPU time (`time.process_time_ns()`). Stamps on names a checkout does
not have are skipped. Printed: each interval's median over the rounds, in ms.

The SDK's side is stamped too, on every side (its `httpcore2` socket): the request's last
write, the response's first read and the read that brought the first text, so the direct
side's wire gets the same reading as the served one's. With llama.cpp's `timings.prompt_ms`
on both sides (`--in-process`), each round's TTFT less its `prompt_ms` is paired with the
direct side's: what the path adds, the model's varying compute taken out.

With `--in-process` the provider's stamps are: its request built (`_body`), its worker
thread running, llama.cpp's handler called (as "request written"), the first chunk with text
reaching the worker's callback (as "first token read"), the callback returning, and the
event loop receiving it; the CPU stamps are then the event loop's thread's alone (llama.cpp
computes in threads of its own), and the worker's own CPU until it calls llama.cpp and in
the first token's callback is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._run_stamps import stamp_run_path

_PROMPT = "Tell me a story about a robot"
_SEED = 42
_STAMPS_PATH = "/_stamps"

# (label, from stamp, to stamp): the intervals printed, in path order.
_INTERVALS = [
    ("node -> provider's request built", "node", "provider"),
    ("request built -> worker thread runs", "provider", "worker"),
    ("worker thread -> llama.cpp called", "worker", "written"),
    ("first token's callback (translate, hand over)", "token_read", "token_handed"),
    ("handed over -> event loop has it", "token_handed", "token_received"),
    ("event loop has it -> broker publishes it", "token_received", "token_publish"),
    ("worker CPU: thread start -> llama.cpp called", "wcpu:worker", "wcpu:written"),
    ("worker CPU: first token's callback", "wcpu:token_read", "wcpu:token_handed"),
    ("SDK + uvicorn: create() -> ASGI call", "create", "asgi"),
    ("request body read", "asgi", "body"),
    ("body -> start_run called (parse)", "body", "start_run"),
    ("start_run -> Runs.start called", "start_run", "runs_start"),
    ("Runs.start", "runs_start", "runs_start_end"),
    ("Runs.start returned -> run task runs", "runs_start_end", "execute"),
    ("run task -> call_runner", "execute", "call_runner"),
    ("call_runner -> node starts", "call_runner", "node"),
    ("node -> provider connects", "node", "connect"),
    ("connect (TCP)", "connect", "connected"),
    ("connected -> request written", "connected", "written"),
    ("Chronos: ASGI call -> request written", "asgi", "written"),
    ("model: request written -> first token read", "written", "token_read"),
    ("token read -> broker publishes it", "token_read", "token_publish"),
    ("publish -> dialect's reader has it", "token_publish", "token_batch"),
    ("reader -> chunk handed to uvicorn", "token_batch", "token_send"),
    ("Chronos: first token read -> chunk sent", "token_read", "token_send"),
    ("uvicorn + SDK: chunk sent -> SDK has it", "token_send", "first"),
    ("response start sent (after ASGI call)", "asgi", "response_start"),
    ("response start -> role chunk handed to uvicorn", "response_start", "role_send"),
    ("served TTFT", "create", "first"),
    ("CPU: ASGI call -> request written", "cpu:asgi", "cpu:written"),
    ("request written -> response start sent", "written", "response_start"),
    ("CPU: request written -> response start sent", "cpu:written", "cpu:response_start"),
    ("CPU: first token read -> chunk sent", "cpu:token_read", "cpu:token_send"),
    ("CPU: ASGI call -> response ended", "cpu:asgi", "cpu:done"),
]


# --- the served side (this file run by `--python`'s interpreter) ------------------------------


def _serve(port: int, model_url: str, max_tokens: int) -> None:
    import threading

    import httpx
    import uvloop

    from chronos import graph, model, server
    from chronos.model.openai import OpenAIProvider
    from chronos.store import MemoryStore
    from chronos.stream import Broker

    stamps: dict[str, int] = {}
    in_process = model_url == "in-process"
    # In process, llama.cpp's threads compute in this process: the loop's thread's CPU alone.
    loop_clock = time.pthread_getcpuclockid(threading.get_ident())

    def stamp(name: str) -> None:
        if name not in stamps:
            stamps[name] = time.perf_counter_ns()
            stamps[f"cpu:{name}"] = (time.clock_gettime_ns(loop_clock) if in_process
                                     else time.process_time_ns())
            if threading.current_thread().name == "chronos-llamacpp":
                stamps[f"wcpu:{name}"] = time.thread_time_ns()

    stamp_run_path(stamp)

    class Stream:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            await self._inner.write(buffer, timeout)
            stamps.pop("written", None)  # the last write before the answer
            stamp("written")

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            data = await self._inner.read(max_bytes, timeout)
            stamp("response_read")
            if b'"content":"' in data and b'"content":""' not in data:
                stamp("token_read")
            return data

        async def aclose(self) -> None:
            await self._inner.aclose()

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        async def connect_tcp(self, *args: Any, **kwargs: Any) -> Stream:
            stamp("connect")
            stream = await self._inner.connect_tcp(*args, **kwargs)
            stamp("connected")
            return Stream(stream)

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    # The client the provider would make itself (a checkout's own), its connections stamped.
    timeout = httpx.Timeout(120, connect=10)
    try:
        from chronos.model._plain_http import plain_http_client
        client = plain_http_client(timeout)
    except ImportError:  # a checkout before it
        client = httpx.AsyncClient(timeout=timeout)
    try:
        from chronos.model._cookies import cookies_when_set
        client = cookies_when_set(client)
    except ImportError:  # a checkout before it
        pass
    pool = client._transport._pool
    pool._network_backend = Backend(pool._network_backend)
    def prompt_ms(value: float) -> None:
        stamps["model:prompt_us"] = int(value * 1e3)

    provider: Any = (_stamped_local_model(stamp, prompt_ms) if in_process else
                     OpenAIProvider("smollm2", base_url=model_url, api_key="unused",
                                    http_client=client))

    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        stamp("node")
        request = model.ChatRequest(
            messages=[model.Message(role="user", content=state["messages"][-1]["content"])],
            max_tokens=max_tokens, temperature=0.0, seed=_SEED)
        response = await graph.stream_chat(provider, request)
        return {"messages": [{"role": "assistant", "content": response.content}]}

    g = graph.StateGraph("local", reducers={"messages": graph.append})
    g.add_node("answer", ask)
    g.set_entry_point("answer")
    g.set_finish_point("answer")
    broker = Broker()
    app = server.create_app({"local": g}, store=MemoryStore(), broker=broker)

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["path"] == _STAMPS_PATH:
            body = json.dumps(stamps).encode()
            stamps.clear()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        stamps.clear()
        stamp("asgi")

        async def stamped_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body"):
                stamp("body")
            return message

        async def stamped_send(message: Any) -> None:
            body = message.get("body", b"")
            if message["type"] == "http.response.start":
                stamp("response_start")
            if b'"role":"assistant"' in body:  # with the first token's, on some checkouts
                stamp("role_send")
            if b'"content":"' in body.replace(b'"content":""', b""):
                stamp("token_send")
            await send(message)

        await app(scope, stamped_receive, stamped_send)
        stamp("done")

    probe.aclose = app.aclose  # type: ignore[attr-defined]
    sock = server.bind("127.0.0.1", port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve(probe, sock))  # type: ignore[arg-type]


def _stamped_local_model(stamp: Callable[[str], None],
                         stamps_prompt: Callable[[float], None]) -> Any:
    """`LlamaCppProvider` with the model server's settings (`dialect_openai.py`'s), stamped."""
    from chronos.model import _handoff
    from chronos.model.llamacpp import LlamaCppProvider

    def is_token(data: str) -> bool:
        return '"content":"' in data and '"content":""' not in data

    class Server:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def handle_chat_completions(self, body: str, callback: Callable[[str], bool]) -> Any:
            def stamped(data: str) -> bool:
                if '"timings"' in data:
                    stamps_prompt(json.loads(data)["timings"]["prompt_ms"])
                token = is_token(data)
                if token:
                    stamp("token_read")
                stop = callback(data)
                if token:
                    stamp("token_handed")
                return stop

            stamp("written")
            return self._inner.handle_chat_completions(body, stamped)

    body, generate, load = LlamaCppProvider._body, LlamaCppProvider._generate, \
        LlamaCppProvider._load
    receive = _handoff.ThreadHandoff.receive

    def stamped_body(self: Any, req: Any) -> str:
        stamp("provider")
        return body(self, req)

    def stamped_generate(self: Any, *args: Any) -> None:
        stamp("worker")
        generate(self, *args)

    async def stamped_receive(self: Any) -> Any:
        item = await receive(self)
        stamp("token_received")
        return item

    LlamaCppProvider._body = stamped_body  # type: ignore[method-assign]
    LlamaCppProvider._generate = stamped_generate  # type: ignore[method-assign]
    LlamaCppProvider._load = lambda self: Server(load(self))  # type: ignore[method-assign]
    _handoff.ThreadHandoff.receive = stamped_receive  # type: ignore[method-assign]
    return LlamaCppProvider(n_ctx=2048, n_threads=1)


# --- a model server answering at once (`--fake`) ---------------------------------------------


def _fake_model(port: int, tokens: int) -> None:
    import uvloop

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": "smollm2",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        data = b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n")
    answer = [chunk({"role": "assistant", "content": None})]
    answer += [chunk({"content": f" t{i}"}) for i in range(tokens)]
    answer += [chunk({}, "stop"), b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_text = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head_text.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.write(head + answer[0] + answer[1])  # as llama.cpp: head, role and first token
        for piece in answer[2:]:
            writer.write(piece)
        with contextlib.suppress(ConnectionError):  # a client may leave after what it needs
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# --- the measuring side ------------------------------------------------------------------------


def _cell(values: list[float], spread: bool) -> str:
    if not spread or len(values) < 2:
        return f"{statistics.median(values):8.3f}"
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"{median:8.3f} ({q1:.3f}..{q3:.3f})"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _process(argv: list[str], port: int) -> Any:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{argv} ended: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv} did not listen")
            time.sleep(0.05)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _ClientReads:
    """The SDK's socket reads and writes (its `httpcore2` sync stream), stamped: when the request
    was sent and each read came, on the clock the served process stamps with."""

    def __init__(self) -> None:
        import httpcore2._backends.sync as backend

        self.writes: list[int] = []
        self.reads: list[int] = []
        stream = backend.SyncStream
        read, write = stream.read, stream.write

        def stamped_read(inner: Any, max_bytes: int, timeout: float | None = None) -> bytes:
            data: bytes = read(inner, max_bytes, timeout)
            self.reads.append(time.perf_counter_ns())
            return data

        def stamped_write(inner: Any, buffer: bytes, timeout: float | None = None) -> None:
            write(inner, buffer, timeout)
            self.writes.append(time.perf_counter_ns())

        stream.read, stream.write = stamped_read, stamped_write  # type: ignore[method-assign]

    def clear(self) -> None:
        self.writes.clear()
        self.reads.clear()

    def stamps(self, first: int) -> dict[str, int]:
        """The request's last write, the response's first read, the read that brought the
        first text (the last one before the SDK yielded it)."""
        return {"sent": self.writes[-1], "head": self.reads[0],
                "text_read": max(t for t in self.reads if t <= first)}


_CLIENT_INTERVALS = [
    ("client: create() -> request sent", "create", "sent"),
    ("client: request sent -> first read (head)", "sent", "head"),
    ("client: read with first text -> SDK yields it", "text_read", "first"),
    ("client: sent -> read with first text", "sent", "text_read"),
    ("chunk handed to uvicorn -> client's read has it", "token_send", "text_read"),
]


def _first_token(client: Any, model: str, reads: _ClientReads,
                 **options: Any) -> tuple[dict[str, int], str, float]:
    """(the client's stamps: create() and first text chunk ns and those of `reads`, text,
    llama.cpp's `prompt_ms` if its last chunk carries its timings, else 0)."""
    reads.clear()
    start = time.perf_counter_ns()
    first = 0
    text: list[str] = []
    prompt_ms = 0.0
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": _PROMPT}], stream=True,
            **options):
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content:
            first = first or time.perf_counter_ns()
            text.append(content)
        prompt_ms = (chunk.model_extra or {}).get("timings", {}).get("prompt_ms", prompt_ms)
    return {"create": start, "first": first, **reads.stamps(first)}, "".join(text), prompt_ms


def _model_server(fake: bool, tokens: int) -> tuple[str, Callable[[], None]]:
    if fake:
        port = _free_port()
        stack = contextlib.ExitStack()
        stack.enter_context(_process([sys.executable, __file__, "_fake", str(port),
                                      str(tokens)], port))
        return f"http://127.0.0.1:{port}/v1", stack.close
    from dialect_openai import local_model_server

    model_server = local_model_server()
    # The closure keeps the server alive (it stops when collected).
    return f"{model_server.listening_address}/v1", lambda: model_server.__class__


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_fake":
        _fake_model(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--python", action="append", default=[],
                        help="an interpreter whose checkout serves (repeat to compare)")
    parser.add_argument("--fake", action="store_true",
                        help="a model server answering at once instead of llama.cpp")
    parser.add_argument("--in-process", action="store_true",
                        help="the served node runs the model itself (LlamaCppProvider)")
    parser.add_argument("--spread", action="store_true",
                        help="each interval's quartiles beside its median")
    parser.add_argument("--timeline", action="store_true",
                        help="also each stamp's median time after the app's ASGI call")
    args = parser.parse_args()
    import httpx
    import openai

    pythons = args.python or [sys.executable]
    model_url, stop_model = _model_server(args.fake, args.max_tokens)
    options = {"max_tokens": args.max_tokens, "temperature": 0.0, "seed": _SEED}
    direct = openai.OpenAI(base_url=model_url, api_key="unused", max_retries=0)
    print(f"load before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with contextlib.ExitStack() as stack:
        sides: dict[str, Any] = {}
        for i, python in enumerate(pythons):
            port = _free_port()
            served_model = "in-process" if args.in_process else model_url
            stack.enter_context(_process(
                [python, __file__, "_serve", str(port), served_model, str(args.max_tokens)],
                port))
            url = f"http://127.0.0.1:{port}"
            sides[f"{i}:{python}"] = (openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                    max_retries=0), url)
        names = [*sides, "direct"]
        intervals: dict[str, dict[str, list[float]]] = {n: {} for n in sides}
        offsets: dict[str, dict[str, list[float]]] = {n: {} for n in sides}
        direct_ttft: list[float] = []
        direct_prompt: list[float] = []
        direct_client: dict[str, list[float]] = {}
        reads = _ClientReads()
        served_prompt: dict[str, list[float]] = {n: [] for n in sides}
        texts: set[str] = set()
        for round_ in range(args.rounds + 3):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                if name == "direct":
                    client_stamps, text, prompt_ms = _first_token(direct, "smollm2", reads,
                                                                  **options)
                    if round_ >= 3:
                        direct_ttft.append((client_stamps["first"] - client_stamps["create"]) / 1e6)
                        direct_prompt.append(prompt_ms)
                        for label, begin, end in _CLIENT_INTERVALS:
                            if begin not in client_stamps:  # a stamp of the served side
                                continue
                            direct_client.setdefault(label, []).append(
                                (client_stamps[end] - client_stamps[begin]) / 1e6)
                    texts.add(text)
                    continue
                client, url = sides[name]
                client_stamps, text, _ = _first_token(client, "local", reads)
                texts.add(text)
                stamps = {k: int(v) for k, v in httpx.get(url + _STAMPS_PATH).json().items()}
                stamps.update(client_stamps)
                if round_ < 3:  # warm-up
                    continue
                if "model:prompt_us" in stamps:
                    served_prompt[name].append(stamps["model:prompt_us"] / 1e3)
                for key, value in stamps.items():
                    if ":" in key:  # a CPU stamp
                        continue
                    offsets[name].setdefault(key, []).append((value - stamps["asgi"]) / 1e6)
                for label, begin, end in _INTERVALS + _CLIENT_INTERVALS:
                    if begin in stamps and end in stamps:
                        intervals[name].setdefault(label, []).append(
                            (stamps[end] - stamps[begin]) / 1e6)
    stop_model()
    print(f"load after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.rounds} rounds"
          f"; {'same text on every side' if len(texts) == 1 else f'TEXTS DIFFER: {texts}'}")
    width = max(len(label) for label, _, _ in _INTERVALS)
    print(f"{'median ms':{width}s} " + " ".join(f"{n.split(':')[0]:>8s}" for n in sides))
    for label, _, _ in _INTERVALS + _CLIENT_INTERVALS:
        cells = [intervals[n].get(label) for n in sides]
        if not any(cells):
            continue
        print(f"{label:{width}s} " + " ".join(
            _cell(c, args.spread) if c else f"{'-':>8s}" for c in cells))
    for label, values in direct_client.items():
        print(f"{label + ', direct':{width}s} {_cell(values, args.spread)}")
    print(f"{'direct TTFT (SDK -> model server)':{width}s} {statistics.median(direct_ttft):8.3f}")
    if all(direct_prompt) and all(served_prompt.values()):  # llama.cpp's timings, both ways
        print(f"{'llama.cpp prompt_ms: served, in process':{width}s} " + " ".join(
            _cell(served_prompt[n], args.spread) for n in sides))
        print(f"{'llama.cpp prompt_ms: its own server':{width}s} "
              f"{_cell(direct_prompt, args.spread)}")
        # TTFT less the model's own prompt time, each side against the direct one in the same
        # round: what the sides' paths add, the model's varying compute taken out.
        direct_rest = [t - p for t, p in zip(direct_ttft, direct_prompt, strict=True)]
        print(f"{'TTFT - prompt_ms, direct':{width}s} {_cell(direct_rest, args.spread)}")
        print(f"{'TTFT - prompt_ms, served - direct, paired':{width}s} " + " ".join(_cell(
            [t - p - d for t, p, d in zip(intervals[n]["served TTFT"], served_prompt[n],
                                          direct_rest, strict=True)], args.spread)
            for n in sides))
        print(f"{'prompt_ms, served - direct, paired':{width}s} " + " ".join(_cell(
            [p - d for p, d in zip(served_prompt[n], direct_prompt, strict=True)], args.spread)
            for n in sides))
        # The model's work besides its prompt: on its own server with the server's HTTP path
        # (request sent -> the read with the first text), in process from llama.cpp's call to
        # its first text's callback.
        direct_model = [r - p for r, p in zip(direct_client["client: sent -> read with first text"],
                                              direct_prompt, strict=True)]
        print(f"{'direct: sent -> first text read, - prompt_ms':{width}s} "
              f"{_cell(direct_model, args.spread)}")
        if all("model: request written -> first token read" in intervals[n] for n in sides):
            print(f"{'served: llama.cpp called -> first token, - prompt_ms':{width}s} " + " ".join(
                _cell([r - p for r, p in zip(
                    intervals[n]["model: request written -> first token read"], served_prompt[n],
                    strict=True)], args.spread) for n in sides))
    if args.timeline:
        for name in sides:
            line = sorted((statistics.median(v), k) for k, v in offsets[name].items())
            print(f"  timeline {name.split(':')[0]} (ms after the ASGI call): "
                  + ", ".join(f"{k} {v:.3f}" for v, k in line))
    for i, name in enumerate(sides):
        print(f"  side {i}: {name.split(':', 1)[1]}")


if __name__ == "__main__":
    main()

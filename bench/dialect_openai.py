"""The OpenAI dialect: what Chronos adds to time-to-first-token, and what an event costs.

    .venv/bin/python bench/dialect_openai.py ttft --rounds 40 --model-server own-process
    .venv/bin/python bench/dialect_openai.py events --clients 10 100 1000 --tokens 100
    .venv/bin/python bench/dialect_openai.py translate

- ttft: the `openai` SDK streams the same greedy answer (temperature 0, fixed seed, same tokens:
  checked) from the local model's own OpenAI-compatible server (llama.cpp, through xllamacpp);
  from `chronos serve`'s `/v1/chat/completions` running the same model itself
  (`LlamaCppProvider`, same GGUF and settings: the `in_process` graph); and from the same
  endpoint streaming it from that model server (the `local` graph, an extra HTTP hop). Each
  round asks the model's own server twice (the second: the noise floor, what the same side
  differs from itself) and the model in Chronos's process three times, so that each model runs
  three times a round (a model, and its process, that runs less often than the other finds less
  of itself in the caches: until 2026-12-04 20:20 UTC the in-process one ran once a round, the
  server's three times). Time from `create()` to the first chunk with text; each side warmed up
  first; each round's six requests in a shuffled order (until 2026-12-04 20:00 UTC the order
  rotated, so each side followed the same one every round), each once every process (this one,
  the model's server's and `chronos serve`, which holds the in-process model) has gone idle, so
  that neither model computes while another side is measured; reported: medians, and the median
  of each round's difference to the model's own server, with a 95 % bootstrap interval of that
  median and its quartiles; and the same of each round's mean of the in-process side's three
  requests less the mean of the model server's two (the headline, being the least noisy).
  `--model-server`: where the model's own server runs, a process of its own (default: as it runs
  beside an application) or this one, beside the SDK client (as the runs before 2026-12-04 15:00
  UTC did); each placement given is measured in turn. First, without a model (the `burst` graph,
  one token): TTFT beside the SDK's round trip for `models.list()`, which isolates what starting
  a run and delivering its first token costs.
- events: C clients at once each stream a run of the `burst` graph (T tokens back to back,
  no model) from one `chronos serve` process, natively (`/runs/stream`, `messages-tuple`
  mode, as LangGraph clients read tokens) or through `/v1/chat/completions`. The server's
  CPU time (from /proc, insensitive to the load generator's) per delivered token event;
  median over `--bursts`, the two kinds alternating.
- translate: the translation alone, in process, on the same token events: the native
  `RunTranslator` + SSE frame against `ChatCompletion.delta` + chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import openai
from bench.dialect_openai_graphs import N_CTX, PROMPT, SEED, THREADS
from tests.server.api_server import serving

_GRAPHS = "bench.dialect_openai_graphs"


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- ttft -------------------------------------------------------------------------------------


def _first_token(client: openai.OpenAI, model: str, at_first: Callable[[], object] | None = None,
                 **options: Any) -> tuple[float, str]:
    """TTFT in seconds and the whole text; `at_first` is called as the first text arrives."""
    start = time.perf_counter()
    first = 0.0
    text: list[str] = []
    for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, **options):
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content:
            if not first:
                first = time.perf_counter() - start
                if at_first is not None:
                    at_first()
            text.append(content)
    return first, "".join(text)


def local_model_server() -> Any:
    """llama.cpp's own OpenAI-compatible server (xllamacpp) on the local model, on a free port
    of 127.0.0.1 (`.listening_address`), one slot, one thread; it serves while it is referenced."""
    import xllamacpp

    from chronos.model.llamacpp import default_model_path

    params = xllamacpp.CommonParams()
    params.model.path = str(default_model_path())
    params.n_ctx = N_CTX
    params.n_parallel = 1
    params.cpuparams.n_threads = THREADS
    params.cpuparams_batch.n_threads = THREADS
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.verbosity = -1  # quiet, as the in-process provider's: no log line per request
    return xllamacpp.Server(params)


@contextlib.contextmanager
def model_server_process() -> Iterator[tuple[str, int]]:
    """`local_model_server()` in a process of its own, as llama.cpp's server runs beside an
    application: its address and pid while the block runs."""
    # A fresh interpreter, not `_harness.start_server`'s fork: this process may hold a model
    # server's threads already (`--model-server this-process own-process`).
    child = subprocess.Popen([sys.executable, __file__, "_model_server"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        address = child.stdout.readline().strip()
        if not address:
            raise SystemExit("the model's server did not start")
        yield address, child.pid
    finally:
        child.kill()
        child.wait()


def _serve_model() -> None:
    """The child of `model_server_process`: serve until the parent closes our stdin."""
    model_server = local_model_server()
    print(model_server.listening_address, flush=True)
    sys.stdin.read()


def _cpu_ns(pid: int) -> int:
    """CPU time of a process's threads but the calling one (which measures), in ns: the
    scheduler's own account."""
    me = str(threading.get_native_id())
    return sum(int(Path(task, "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir() if task.name != me)


def _settle(pids: tuple[int, ...]) -> None:
    """Wait until no process in `pids` computes (under 10 % of a core over 5 ms): a request's
    aftermath on one side (a run's last records, a model's slot) stays out of the next."""
    for _ in range(200):
        before = [_cpu_ns(pid) for pid in pids]
        time.sleep(0.005)
        if all(_cpu_ns(pid) - used < 500_000 for pid, used in zip(pids, before, strict=True)):
            return
    raise SystemExit(f"processes {pids} did not go idle in 1 s")


_DIRECT = "llama.cpp server"
_DIRECT_AGAIN = "llama.cpp server, again"  # the noise floor: the same side measured twice
_IN_PROCESS = ("chronos, model in process", "chronos, model in process (2)",
               "chronos, model in process (3)")
_PROXY = "chronos -> llama.cpp server"


def shuffled_rounds(sides: dict[str, Callable[[], tuple[float, str]]], pids: tuple[int, ...],
                    rounds: int) -> Iterator[dict[str, float]]:
    """Each round's TTFT by side: every side once, in an order shuffled each round (seeded; a
    rotated one would have each side follow the same side every round, and so find its server's
    caches warm or cold every round), each once the processes `pids` have gone idle.

    Raises:
        SystemExit: the sides streamed different text.
    """
    shuffle = random.Random(0).shuffle
    texts: set[str] = set()
    for _ in range(rounds):
        order = list(sides)
        shuffle(order)
        measured = {}
        for name in order:
            _settle(pids)
            measured[name], text = sides[name]()
            texts.add(text)
        yield measured
    if len(texts) != 1:
        raise SystemExit(f"the sides streamed different text: {texts}")


def print_difference(name: str, baseline: str, values: list[float]) -> None:
    """The median of a side's per-round differences to `baseline`, its 95 % interval and its
    quartiles, in ms."""
    low, high = _median_interval(values)
    quartiles = statistics.quantiles(values, n=4)
    print(f"  {name} - {baseline}, per round: median {statistics.median(values) * 1e3:.2f} ms "
          f"(95 % interval {low * 1e3:.2f} .. {high * 1e3:.2f}; quartiles "
          f"{quartiles[0] * 1e3:.2f} .. {quartiles[2] * 1e3:.2f} ms)")


def _median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of `values` (seeded: the same every run)."""
    pick = random.Random(0).choices
    medians = sorted(statistics.median(pick(values, k=len(values))) for _ in range(resamples))
    return medians[int(resamples * 0.025)], medians[int(resamples * 0.975) - 1]


def ttft(rounds: int, max_tokens: int, own_process: bool) -> None:
    """The four sides: the model's own server (twice: the noise floor), Chronos running the
    model itself, Chronos streaming from the model's server. Each model idle (checked) while
    another side runs.
    `own_process`: the model's server runs in a process of its own, else in this one."""
    with contextlib.ExitStack() as stack:
        if own_process:
            address, model_pid = stack.enter_context(model_server_process())
        else:
            model_server = local_model_server()
            address, model_pid = model_server.listening_address, os.getpid()
        _ttft(rounds, max_tokens, f"{address}/v1", model_pid)


def _ttft(rounds: int, max_tokens: int, model_url: str, model_pid: int) -> None:
    os.environ["CHRONOS_BENCH_MODEL_URL"] = model_url
    os.environ["CHRONOS_BENCH_MAX_TOKENS"] = str(max_tokens)
    direct = openai.OpenAI(base_url=model_url, api_key="unused", max_retries=0)
    options = {"max_tokens": max_tokens, "temperature": 0.0, "seed": SEED}
    print(f"load before: {_load()}")
    with serving(f"{_GRAPHS}:local", f"{_GRAPHS}:in_process") as served:
        chronos = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
        # The model in Chronos's process answers as often as llama.cpp's server's (three
        # times a round: direct, again, proxy): a model, and the process around it, that runs
        # more often finds more of its code and data in the caches, and answers the sooner.
        sides = {_DIRECT: lambda: _first_token(direct, "smollm2", **options),
                 _DIRECT_AGAIN: lambda: _first_token(direct, "smollm2", **options),
                 _PROXY: lambda: _first_token(chronos, "local"),
                 **{name: lambda: _first_token(chronos, "in_process") for name in _IN_PROCESS}}
        pids = tuple({os.getpid(), model_pid, served.pid})
        for side in sides.values():  # warm-up: connections, the models' prompt caches
            side()
            side()
        _settle(pids)
        idle = [_cpu_ns(pid) for pid in pids]
        time.sleep(1)
        idle = [(_cpu_ns(pid) - used) / 1e6 for pid, used in zip(pids, idle, strict=True)]
        print("idle, both models loaded: CPU over 1 s, " + ", ".join(
            f"pid {pid} {used:.2f} ms" for pid, used in zip(pids, idle, strict=True))
            + f" (model's server: pid {model_pid}, chronos serve: pid {served.pid})")
        paired_ttft(sides, pids, rounds, (_DIRECT, _DIRECT_AGAIN), _IN_PROCESS)
    print(f"load after: {_load()}; {rounds} rounds, {max_tokens} tokens, same text on all sides")


def paired_ttft(sides: dict[str, Callable[[], tuple[float, str]]], pids: tuple[int, ...],
                rounds: int, baseline: tuple[str, ...], ours: tuple[str, ...] = ()) -> None:
    """Measure `shuffled_rounds` and print each side's median TTFT and its per-round
    difference to `baseline[0]`; and, when `ours` names sides, per round the mean of those less
    the mean of the `baseline` sides (the headline, being the least noisy)."""
    firsts: dict[str, list[float]] = {name: [] for name in sides}
    differences: dict[str, list[float]] = {name: [] for name in sides if name != baseline[0]}
    pooled: list[float] = []
    for measured in shuffled_rounds(sides, pids, rounds):
        for name, first in measured.items():
            firsts[name].append(first)
            if name in differences:
                differences[name].append(first - measured[baseline[0]])
        if ours:
            pooled.append(statistics.fmean(measured[name] for name in ours)
                          - statistics.fmean(measured[name] for name in baseline))
    width = max(map(len, sides))
    for name, values in firsts.items():
        print(f"  {name:{width}s} TTFT median {statistics.median(values) * 1e3:7.2f} ms")
    for name, values in differences.items():
        print_difference(name, baseline[0], values)
    if ours:
        print_difference(f"{ours[0]} (mean of {len(ours)})",
                         f"{baseline[0]} (mean of {len(baseline)})", pooled)


@contextlib.contextmanager
def served_process(argv: Callable[[int], list[str]], ready: str, what: str, *,
                   quiet: bool = False) -> Iterator[tuple[str, int]]:
    """A server started as `argv(port)` on a free port of 127.0.0.1, in a process of its own:
    its URL and pid once a GET of its path `ready` answers 200, while the block runs.
    `quiet`: its output is dropped.

    Raises:
        SystemExit: the process ended before it served.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = subprocess.DEVNULL if quiet else None
    child = subprocess.Popen(argv(port), stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + ready, timeout=1).status_code == 200:
                    break
            if child.poll() is not None:
                raise SystemExit(f"{what} did not start")
            time.sleep(0.05)
        yield url, child.pid
    finally:
        child.terminate()
        child.wait()


def ttft_alone(rounds: int) -> None:
    """Chronos's part without a model: the first token of a run whose model answers at once,
    beside the SDK's round trip for `models.list()` on the same server (HTTP and SDK alone)."""
    print(f"load before: {_load()}")
    with serving(f"{_GRAPHS}:burst") as served:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
        trips: list[float] = []
        firsts: list[float] = []
        for i in range(rounds + 3):
            start = time.perf_counter()
            client.models.list()
            trip = time.perf_counter() - start
            first = 0.0
            start = time.perf_counter()
            for chunk in client.chat.completions.create(
                    model="burst", messages=[{"role": "user", "content": "1"}], stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter() - start
            if i >= 3:  # warm-up rounds aside
                trips.append(trip)
                firsts.append(first)
    print(f"load after: {_load()}; {rounds} rounds")
    print(f"  SDK round trip (models.list)   median {statistics.median(trips) * 1e3:7.2f} ms")
    print(f"  TTFT, model answering at once  median {statistics.median(firsts) * 1e3:7.2f} ms")
    print(f"  run start to first token       median "
          f"{(statistics.median(firsts) - statistics.median(trips)) * 1e3:7.2f} ms")


def ttft_in_process(rounds: int) -> None:
    """The same without HTTP: `start_run` on an app's `Runs` (memory store, in-process broker)
    until the run's first token reaches the reader."""
    from bench.dialect_openai_graphs import burst
    from starlette.requests import Request

    from chronos.server import Retention
    from chronos.server._assistants import Assistants
    from chronos.server._metrics import ServerMetrics
    from chronos.server._records import MemoryRecords
    from chronos.server._runs import Runs
    from chronos.server._threads import Threads
    from chronos.server.dialects._run import start_run
    from chronos.store import MemoryStore
    from chronos.stream import Broker

    async def measure() -> tuple[list[float], list[float]]:
        store, broker = MemoryStore(), Broker()
        assistants = Assistants({"burst": burst.compile()}, store, broker)
        records = MemoryRecords()
        runs = Runs(assistants, Threads(store, assistants, records), broker, records,
                    ServerMetrics(), Retention())
        await runs.open()
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
        started: list[float] = []
        firsts: list[float] = []
        for i in range(rounds + 20):
            begin = time.perf_counter()
            run = await start_run(runs, request, "burst",
                                  {"messages": [{"role": "user", "content": "1"}]})
            start = time.perf_counter() - begin
            first = 0.0
            async for batch in run.batches():
                if not first and any(e.type == "token" for e in batch):
                    first = time.perf_counter() - begin
            await run.aclose()
            if i >= 20:  # warm-up aside
                started.append(start)
                firsts.append(first)
        await runs.aclose()
        await broker.aclose()
        return started, firsts

    started, firsts = asyncio.run(measure())
    print(f"  in process, {rounds} runs: start_run median "
          f"{statistics.median(started) * 1e3:.2f} ms, first token read median "
          f"{statistics.median(firsts) * 1e3:.2f} ms  (load {_load()})")


# --- events -----------------------------------------------------------------------------------


async def _native(client: httpx.AsyncClient, tokens: int) -> int:
    body = {"assistant_id": "burst", "stream_mode": ["messages-tuple"],
            "input": {"messages": [{"role": "user", "content": str(tokens)}]}}
    count = 0
    async with client.stream("POST", "/runs/stream", json=body) as response:
        async for line in response.aiter_lines():
            count += line == "event: messages"
    return count


async def _openai(client: httpx.AsyncClient, tokens: int) -> int:
    body = {"model": "burst", "stream": True,
            "messages": [{"role": "user", "content": str(tokens)}]}
    count = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            count += line.startswith('data: {"id"') and '"content":"t' in line
    return count


async def _burst(url: str, pid: int, kind: str, clients: int, tokens: int) -> tuple[float, float]:
    """(server CPU µs per delivered event, seconds) for one burst of `clients` streams."""
    read = _native if kind == "native" else _openai
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:
        cpu, start = _cpu_seconds(pid), time.perf_counter()
        counts = await asyncio.gather(*(read(client, tokens) for _ in range(clients)))
        seconds, used = time.perf_counter() - start, _cpu_seconds(pid) - cpu
    if sum(counts) != clients * tokens:
        raise SystemExit(f"{kind}: {sum(counts)} token events of {clients * tokens}")
    return used / (clients * tokens) * 1e6, seconds


def events(clients: list[int], tokens: int, bursts: int) -> None:
    print(f"load before: {_load()}")
    with serving(f"{_GRAPHS}:burst") as served:
        for count in clients:
            asyncio.run(_burst(served.url, served.pid, "native", min(count, 10), tokens))
            results: dict[str, list[tuple[float, float]]] = {"native": [], "openai": []}
            for i in range(bursts):
                kinds = ["native", "openai"] if i % 2 == 0 else ["openai", "native"]
                for kind in kinds:
                    results[kind].append(asyncio.run(
                        _burst(served.url, served.pid, kind, count, tokens)))
            per_event = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
            wall = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
            print(f"  C={count:5d} T={tokens}: server CPU per event native "
                  f"{per_event['native']:.1f} us, openai {per_event['openai']:.1f} us, ratio "
                  f"{per_event['openai'] / per_event['native']:.2f}; burst wall native "
                  f"{wall['native']:.2f} s, openai {wall['openai']:.2f} s  (load {_load()})")


# --- translate --------------------------------------------------------------------------------


def translate(count: int) -> None:
    from chronos.server._stream import frame
    from chronos.server._stream_modes import RunTranslator
    from chronos.server.dialects._openai_chat import ChatCompletion

    payloads = [{"type": "token", "node_id": "answer", "seq": i, "timestamp": 0.0,
                 "run_id": "r", "session_id": "s", "state": None, "error": "", "name": "",
                 "path": [], "data": {"message_id": "m", "content": f"t{i} ", "reasoning": "",
                                      "tool_call_deltas": [], "tool_calls": []}}
                for i in range(count)]

    def native() -> float:
        translator = RunTranslator("r", ("messages-tuple",), subgraphs=False, started=True)
        start = time.perf_counter()
        for p in payloads:
            for name, data in translator.frames("token", p):
                frame(name, data, "1-0")
        return time.perf_counter() - start

    def dialect() -> float:
        completion = ChatCompletion("chatcmpl-r", "agent")
        start = time.perf_counter()
        for p in payloads:
            delta = completion.delta(p["data"])
            if delta is not None:
                completion.chunk(delta)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"native": [], "openai": []}
    for _ in range(7):
        times["native"].append(native())
        times["openai"].append(dialect())
    per = {k: statistics.median(v) / count * 1e6 for k, v in times.items()}
    print(f"  translation per token event: native {per['native']:.2f} us, openai "
          f"{per['openai']:.2f} us, ratio {per['openai'] / per['native']:.2f}  (load {_load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    first = sub.add_parser("ttft")
    first.add_argument("--rounds", type=int, default=30)
    first.add_argument("--max-tokens", type=int, default=8)
    first.add_argument("--model-server", choices=["own-process", "this-process"], nargs="+",
                       default=["own-process"],
                       help="where the model's own server runs: a process of its own (as "
                            "beside an application), or this one, beside the SDK client")
    fan = sub.add_parser("events")
    fan.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    fan.add_argument("--tokens", type=int, default=100)
    fan.add_argument("--bursts", type=int, default=3)
    alone = sub.add_parser("translate")
    alone.add_argument("--count", type=int, default=20_000)
    if sys.argv[1:] == ["_model_server"]:
        _serve_model()
        return
    args = parser.parse_args()
    from importlib.metadata import version
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
          f"openai {version('openai')}, uvicorn {version('uvicorn')}")
    if args.what == "ttft":
        ttft_in_process(200)
        ttft_alone(args.rounds)
        for where in args.model_server:
            print(f"the model's server runs in {where.replace('-', ' ')}")
            ttft(args.rounds, args.max_tokens, own_process=where == "own-process")
    elif args.what == "events":
        events(args.clients, args.tokens, args.bursts)
    else:
        translate(args.count)


if __name__ == "__main__":
    main()

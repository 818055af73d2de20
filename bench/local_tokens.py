"""Tokens per second: the local provider against raw xllamacpp, same prompt, same run.

    .venv/bin/python bench/local_tokens.py                 # 25 rounds of 128 tokens
    .venv/bin/python bench/local_tokens.py --rounds 3 --max-tokens 64 --threads 2

Both sides load the same GGUF with the same settings, each in its own `xllamacpp.Server`, and
generate greedily (temperature 0, fixed seed), so they produce the same tokens (checked). Each
round runs every side once, in an order that rotates from round to round; a warm-up round is
discarded.
Raw runs twice: in the main thread, and in a new thread as the provider's generation does.
A run's time is from the request to its last chunk, tokens/s the tokens generated divided by
it. Reported: medians over rounds of tokens/s, of time to the first text, of each round's ratio
to raw (pairing the runs of a round cancels slow changes in machine load; its quartiles show
the noise), and of the process's
CPU time per token (all threads; insensitive to other processes' load, so it shows the
provider's own cost). Last, the cost per chunk of the provider's hand-off alone, without a
model: the part of the provider's work that raw xllamacpp does not do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import NamedTuple

import orjson
import xllamacpp

from chronos.model import ChatRequest, ChatResponse, Message
from chronos.model._handoff import End, Gate, ThreadHandoff
from chronos.model.llamacpp import LlamaCppProvider, default_model_path

PROMPT = "Tell me a story about a robot"
SEED = 42
N_CTX = 2048
RAW = "raw xllamacpp"
RAW_THREAD = "raw, in a thread of its own"
ASYNC = "LlamaCppProvider.stream_chat"
SYNC = "LlamaCppProvider.stream_chat_sync"


class Run(NamedTuple):
    text: str
    tokens: int  # generated, as llama.cpp counts them
    seconds: float  # request to last chunk
    first: float  # request to first text
    cpu: float  # process CPU seconds, all threads


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.first = 0.0

    def text(self) -> None:
        self.first = self.first or time.perf_counter() - self.start

    def run(self, text: list[str], tokens: int) -> Run:
        return Run(
            "".join(text),
            tokens,
            time.perf_counter() - self.start,
            self.first,
            time.process_time() - self.cpu_start,
        )


def raw_server(path: str, threads: int) -> xllamacpp.Server:
    """An `xllamacpp.Server` set up as the provider sets up its own."""
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = N_CTX
    params.n_parallel = 1
    params.warmup = False
    params.verbosity = -1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    return xllamacpp.Server(params)


def raw_run(server: xllamacpp.Server, max_tokens: int) -> Run:
    """xllamacpp's own streaming chat completion: JSON text in, a callback per chunk."""
    clock = Clock()
    text: list[str] = []
    usage: dict[str, int] = {}

    def on_chunk(data: str) -> bool:
        chunk = orjson.loads(data)
        for choice in chunk["choices"]:
            content = choice["delta"].get("content")
            if content:
                clock.text()
                text.append(content)
        usage.update(chunk.get("usage") or {})
        return False

    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "seed": SEED,
        "max_tokens": max_tokens,
    }
    server.handle_chat_completions(orjson.dumps(body).decode(), on_chunk)
    return clock.run(text, usage["completion_tokens"])


def in_a_thread(run: Callable[[], Run]) -> Run:
    """Run in a new thread, as the provider generates: the OS places a new thread on the least
    busy CPU, which on a loaded machine alone makes a difference of several percent."""
    result: list[Run] = []
    worker = threading.Thread(target=lambda: result.append(run()))
    worker.start()
    worker.join()
    return result[0]


def request(max_tokens: int) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content=PROMPT)],
        max_tokens=max_tokens,
        temperature=0.0,
        seed=SEED,
    )


def consume(clock: Clock, chunks: Iterable[ChatResponse], text: list[str]) -> int:
    tokens = 0
    for chunk in chunks:
        if chunk.content:
            clock.text()
            text.append(chunk.content)
        if chunk.usage is not None:
            tokens = chunk.usage.output_tokens or 0
    return tokens


async def provider_run(provider: LlamaCppProvider, max_tokens: int) -> Run:
    clock = Clock()
    text: list[str] = []
    tokens = 0
    async for chunk in provider.stream_chat(request(max_tokens)):
        tokens = consume(clock, [chunk], text) or tokens
    return clock.run(text, tokens)


def sync_run(provider: LlamaCppProvider, max_tokens: int) -> Run:
    clock = Clock()
    text: list[str] = []
    tokens = consume(clock, provider.stream_chat_sync(request(max_tokens)), text)
    return clock.run(text, tokens)


def handoff_cost(items: int = 50_000) -> float:
    """Seconds per chunk of the provider's thread-to-loop hand-off alone, without a model."""
    chunk = ChatResponse(content="token", delta=True)

    async def measure() -> float:
        handoff = ThreadHandoff[ChatResponse](asyncio.get_running_loop(), 8, Gate())

        def produce() -> None:
            for _ in range(items):
                handoff.send(chunk)
            handoff.end(None)

        start = time.perf_counter()
        producer = threading.Thread(target=produce)
        producer.start()
        while not isinstance(await handoff.receive(), End):
            pass
        elapsed = time.perf_counter() - start
        producer.join()
        return elapsed / items

    return asyncio.run(measure())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the provider's)")
    args = parser.parse_args()

    path = default_model_path()
    provider = LlamaCppProvider(path, n_ctx=N_CTX, n_threads=args.threads)
    raw = raw_server(str(path), provider.n_threads)
    loop = asyncio.new_event_loop()
    sides: dict[str, Callable[[], Run]] = {
        RAW: lambda: raw_run(raw, args.max_tokens),
        RAW_THREAD: lambda: in_a_thread(lambda: raw_run(raw, args.max_tokens)),
        ASYNC: lambda: loop.run_until_complete(provider_run(provider, args.max_tokens)),
        SYNC: lambda: sync_run(provider, args.max_tokens),
    }
    names = list(sides)
    results: dict[str, list[Run]] = {name: [] for name in names}
    for round_ in range(args.rounds + 1):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            outcome = sides[name]()
            if round_:  # round 0 warms up: loads the models, fills caches
                results[name].append(outcome)
    loop.run_until_complete(provider.aclose())
    loop.close()

    reference = results[ASYNC][0]
    for name, runs in results.items():
        if any(run.text != reference.text for run in runs):
            raise SystemExit(f"{name} generated different text: not comparable")

    load = os.getloadavg()[0]
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {platform.system()}, load {load:.1f}")
    print(
        f"python {platform.python_version()}, xllamacpp {version('xllamacpp')}, "
        f"chronos-stream {version('chronos-stream')}, model {path.name}, n_ctx {N_CTX}, "
        f"llama threads {provider.n_threads}"
    )
    print(
        f"{args.rounds} rounds, {reference.tokens} tokens each (same text on every side), "
        f"greedy, seed {SEED}; medians:\n"
    )
    print(
        f"{'':34} {'tokens/s':>9} {'vs raw (middle half of rounds)':>31} "
        f"{'first text':>11} {'CPU/token':>10}"
    )
    for name, runs in results.items():
        rate = statistics.median(run.tokens / run.seconds for run in runs)
        pairs = zip(results[RAW], runs, strict=True)
        ratios = [base.seconds / run.seconds - 1 for base, run in pairs]
        low, middle, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        first_ms = statistics.median(run.first for run in runs) * 1000
        cpu_ms = statistics.median(run.cpu / run.tokens for run in runs) * 1000
        spread = f"{middle:+7.1%} [{low:+6.1%}, {high:+6.1%}]"
        print(f"{name:34} {rate:9.1f} {spread:>31} {first_ms:8.1f} ms {cpu_ms:7.2f} ms")

    print(f"\nthe thread-to-loop hand-off alone, no model: {handoff_cost() * 1e6:.1f} µs per chunk")


if __name__ == "__main__":
    main()

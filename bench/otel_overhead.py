"""What tracing costs a run: W1's per-step cost and the per-token cost, before and after.

    .venv/bin/python bench/otel_overhead.py                 # against `main`'s source
    .venv/bin/python bench/otel_overhead.py --before-rev REV --repeat 7

Three variants, each in a fresh interpreter, interleaved round by round so that a busy
machine slows them alike (the medians' ratios are what count; each is also timed in CPU time
of the process, which other processes inflate far less on a shared machine):
  before  the source at `--before-rev` (extracted with `git archive`), no tracer provider;
  off     this source, no tracer provider: the instrumentation's cost when nobody traces;
  sdk     this source, the OpenTelemetry SDK's `TracerProvider` with a `BatchSpanProcessor`
          whose exporter drops the spans (the cost of tracing, not of a network).
Workloads (interpreted source, CHRONOS_INTERPRETED=1, as the compiled modules are untouched):
  W1  a chain of 50 trivial async nodes, no store: microseconds per node step;
  T   one node streaming 20,000 chunks through `graph.stream_chat` from an in-process
      provider, read by a `messages` consumer: microseconds each token adds to the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NODES = 50
TOKENS = 20_000


def child(mode: str, runs: int) -> dict[str, float]:
    from chronos import graph
    from chronos.model import BaseProvider, ChatRequest, ChatResponse, Message, StopReason, Usage

    if mode == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Drop(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)

    async def step(state: dict[str, Any]) -> dict[str, Any]:
        return {"x": state["x"] + 1}

    g = graph.StateGraph("w1")
    for i in range(NODES):
        g.add_node(f"n{i}", step)
        if i:
            g.add_edge(f"n{i - 1}", f"n{i}")
    chain = g.set_entry_point("n0").set_finish_point(f"n{NODES - 1}").compile()

    class Tokens(BaseProvider):
        name = "bench"
        model = "bench-model"

        def __init__(self, count: int) -> None:
            self.count = count

        async def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
            chunk = ChatResponse(content="x", delta=True)
            for i in range(self.count):
                if i % 100 == 0:
                    await asyncio.sleep(0)  # as a node awaiting a model does
                yield chunk
            yield ChatResponse(delta=True, usage=Usage(1, self.count),
                               stop_reason=StopReason.END)

        async def aclose(self) -> None:
            pass

    request = ChatRequest(messages=[Message(role="user", content="hi")])

    def talker(count: int) -> graph.CompiledGraph:
        async def talk(state: dict[str, Any]) -> dict[str, Any]:
            response = await graph.stream_chat(Tokens(count), request)
            return {"n": len(response.content)}

        return (graph.StateGraph(f"t{count}").add_node("talk", talk).set_entry_point("talk")
                .set_finish_point("talk").compile())

    async def per_step() -> tuple[float, float]:
        runner = graph.Runner(chain)
        await runner.run("warm", {"x": 0})
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(runs):
            await runner.run(f"s{i}", {"x": 0})
        steps = runs * NODES
        return ((time.perf_counter() - start) / steps * 1e6,
                (time.process_time() - cpu) / steps * 1e6)

    async def timed(compiled: graph.CompiledGraph) -> tuple[float, float]:
        runner = graph.Runner(compiled)
        events = runner.stream("messages")

        async def consume() -> None:
            async for _ in events:
                pass

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(consume(), runner.run("s", {}))
        return time.perf_counter() - start, time.process_time() - cpu

    async def per_token() -> tuple[float, float]:
        # The median of five differences: one pair of timings is at the mercy of a busy core.
        with_tokens, without = talker(TOKENS), talker(0)
        await timed(with_tokens)
        walls, cpus = [], []
        for _ in range(5):
            (wall, cpu), (base_wall, base_cpu) = await timed(with_tokens), await timed(without)
            walls.append((wall - base_wall) / TOKENS * 1e6)
            cpus.append((cpu - base_cpu) / TOKENS * 1e6)
        return statistics.median(walls), statistics.median(cpus)

    step_wall, step_cpu = asyncio.run(per_step())
    token_wall, token_cpu = asyncio.run(per_token())
    out = {"step_us": step_wall, "step_cpu_us": step_cpu, "token_us": token_wall,
           "token_cpu_us": token_cpu}
    if mode == "sdk":
        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    return out


def run_child(src: Path, mode: str, runs: int) -> dict[str, float]:
    env = {**os.environ, "CHRONOS_INTERPRETED": "1", "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--runs", str(runs)],
                         env=env, capture_output=True, text=True, check=True, cwd=src.parent)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def extract(rev: str, into: Path) -> Path:
    archive = into / "before.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["off", "sdk"])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before-rev", default="main")
    args = parser.parse_args()
    if args.child:
        import chronos

        assert Path(chronos.__file__).is_relative_to(os.environ["PYTHONPATH"]), chronos.__file__
        print(json.dumps(child(args.child, args.runs)))
        return
    with tempfile.TemporaryDirectory(prefix="otel-bench-") as tmp:
        before = extract(args.before_rev, Path(tmp))
        variants = {"before": (before, "off"), "off": (ROOT / "src", "off"),
                    "sdk": (ROOT / "src", "sdk")}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, (src, mode) in variants.items():
                results[name].append(run_child(src, mode, args.runs))
    print(f"python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, "
          f"{args.repeat} rounds, W1 {args.runs} runs x {NODES} steps, T {TOKENS} tokens")
    keys = ("step_us", "step_cpu_us", "token_us", "token_cpu_us")
    medians = {name: {key: statistics.median(r[key] for r in rounds) for key in keys}
               for name, rounds in results.items()}
    for name, values in medians.items():
        print(f"{name:7} W1 {values['step_us']:7.2f} us/step (cpu {values['step_cpu_us']:7.2f})"
              f"   T {values['token_us']:6.3f} us/token (cpu {values['token_cpu_us']:6.3f})")
    # The fastest round is the one least disturbed by other processes: its ratios are shown
    # beside the medians' (on a loaded machine they are the steadier of the two).
    fastest = {name: {key: min(r[key] for r in rounds) for key in keys}
               for name, rounds in results.items()}
    for key, label in (("step_us", "W1 per step"), ("step_cpu_us", "W1 per step, cpu"),
                       ("token_us", "per token"), ("token_cpu_us", "per token, cpu")):
        base, low = medians["before"][key], fastest["before"][key]
        print(f"{label}: off/before {medians['off'][key] / base:.3f} "
              f"(fastest {fastest['off'][key] / low:.3f}), "
              f"sdk/before {medians['sdk'][key] / base:.3f} "
              f"(+{medians['sdk'][key] - base:.2f} us; fastest {fastest['sdk'][key] / low:.3f})")


if __name__ == "__main__":
    main()

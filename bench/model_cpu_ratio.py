"""chronos against the bare httpx + httpx-sse + orjson loop, by CPU per event, interleaved.

The figure issue 18 sets a goal on (chronos at least 1.2x the bare loop's rate while doing
the full assembly), measured so that the machine's load falls on both sides alike: one
client process, both clients set up once, then `ROUNDS` rounds of one coalesced
20,000-event stream each, bare then chronos, CPU time (`time.process_time`) per stream.
Reported: the medians per event, and the median and range of the per-round ratio.

    .venv/bin/python bench/model_cpu_ratio.py openai [ROUNDS]
    .venv/bin/python bench/model_cpu_ratio.py anthropic [ROUNDS]

ROUNDS defaults to 11. The streams and both clients are those of
`bench/model_openai_stream.py` and `bench/model_anthropic_stream.py`.
"""

import asyncio
import importlib
import statistics
import sys
import time

from _harness import start_server

VENDOR = sys.argv[1] if len(sys.argv) > 1 else "openai"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 11
N = 20000
del sys.argv[1:]  # the vendor benchmark reads its own arguments at import
bench = importlib.import_module(f"model_{VENDOR}_stream")


async def main(url):
    cpu = {"bare": [], "chronos": []}
    async with bench.bare(url) as bare_run, bench.chronos_run(url) as chronos_run:
        await bare_run()  # warm both up: connections, imports, caches
        await chronos_run()
        for _ in range(ROUNDS):
            for name, run in (("bare", bare_run), ("chronos", chronos_run)):
                started = time.process_time()
                await run()
                cpu[name].append((time.process_time() - started) / N * 1e6)
    ratios = [bare / ours for bare, ours in zip(cpu["bare"], cpu["chronos"], strict=True)]
    print(
        f"{VENDOR}: bare {statistics.median(cpu['bare']):.2f} us, chronos "
        f"{statistics.median(cpu['chronos']):.2f} us CPU/event (medians of {ROUNDS}); "
        f"bare/chronos per round: median {statistics.median(ratios):.2f}x, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    proc, url = start_server(bench.serve, N)
    asyncio.run(main(url))
    proc.terminate()

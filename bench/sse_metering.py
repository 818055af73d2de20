"""What counting a dialect's SSE stream in the server's metrics adds per chunk it sends.

    CHRONOS_INTERPRETED=1 .venv/bin/python bench/sse_metering.py

A dialect's frames (OpenAI, AG-UI, AI SDK) go through `sse_response`'s metering wrapper,
which counts the events in each chunk into `ServerMetrics` (prometheus-client here). This
streams 100,000 one-event chunks through it and without it, in one process, and prints the
CPU time each chunk gains: the median of 9 alternating pairs, and their spread.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from chronos.server._metrics import ServerMetrics
from chronos.server.dialects._run import _metered

CHUNK = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
         b'"delta":{"content":"word "}}]}\n\n')
CHUNKS = 100_000
PAIRS = 9


async def _frames() -> AsyncIterator[bytes]:
    for _ in range(CHUNKS):
        yield CHUNK


async def _plain() -> None:
    async for _ in _frames():
        pass


def _through(metrics: ServerMetrics) -> Callable[[], Coroutine[Any, Any, None]]:
    async def read() -> None:
        async for _ in _metered(_frames(), metrics):
            pass
    return read


def _cpu(read: Callable[[], Coroutine[Any, Any, None]]) -> float:
    started = time.process_time()
    asyncio.run(read())
    return time.process_time() - started


def main() -> None:
    metrics = ServerMetrics()
    added = [(_cpu(_through(metrics)) - _cpu(_plain)) / CHUNKS * 1e6 for _ in range(PAIRS)]
    print(f"prometheus-client: {metrics.registry is not None}; {CHUNKS:,} chunks, {PAIRS} pairs")
    print(f"metering adds {statistics.median(added):.3f} us CPU per chunk "
          f"(spread {min(added):.3f}-{max(added):.3f})")


if __name__ == "__main__":
    main()

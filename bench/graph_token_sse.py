"""The cost of one model token on its way from a node to the SSE frame a browser receives.

    .venv/bin/python bench/graph_token_sse.py            # 20,000 tokens, 7 repeats
    .venv/bin/python bench/graph_token_sse.py --tokens 2000 --repeat 3

A node emits `MessageDelta` tokens, as `graph.stream_chat` does for each chunk; the runner
publishes them to an in-process `stream.Broker`, whose subscriber takes each event's SSE
frame (what `broker.sse_handler` writes). Microseconds per token = (run with tokens - the
same run without) / tokens, wall clock and CPU time of the process; medians over the repeats.
On a loaded machine those swing widely, so the step that turns a token's event into the
broker's SSE frame (`publish_to_broker` plus the frame) is also timed alone: the minimum over
many rounds, which competing processes can only raise.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from typing import Any

from chronos import graph, stream
from chronos.graph import _events
from chronos.stream._wire import event_frame

ROUNDS, CALLS = 2_000, 50

YIELD_EVERY = 100


async def one_run(count: int) -> tuple[float, float, int]:
    async def node(state: dict[str, Any]) -> None:
        for i in range(count):
            graph.emit("token", graph.MessageDelta(message_id="msg-1", content="tok"))
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    broker = stream.Broker()
    g = graph.StateGraph("tokens").add_node("chat", node)
    runner = graph.Runner(g.set_entry_point("chat").set_finish_point("chat").compile(),
                          broker=broker)
    subscription = broker.subscribe("reader", topics=["s"], max_pending=count + 100)
    cpu = time.process_time()
    start = time.perf_counter()

    async def consume() -> int:
        size = 0
        async for event in subscription:
            size += len(event_frame(event))
            if event.type == "completed":
                return size
        return size

    size = (await asyncio.gather(consume(), runner.run("s", {})))[0]
    broker.unsubscribe("reader")
    return time.perf_counter() - start, time.process_time() - cpu, size


async def publish_step() -> float:
    """Microseconds from a token's `StreamEvent` to its frame on a subscriber: the minimum."""
    broker = stream.Broker()
    subscription = broker.subscribe("reader", topics=["s"], max_pending=CALLS * 2)
    event = graph.StreamEvent("token", "chat", 1, time.time(), "run", "s",
                              data=graph.MessageDelta(message_id="msg-1", content="tok"))
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            _events.publish_to_broker(broker, event)
        for published in await subscription.receive_batch(CALLS):
            event_frame(published)
        best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    broker.unsubscribe("reader")
    return best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    build = "interpreted" if _events.__file__.endswith(".py") else "event path compiled"
    print(f"python {platform.python_version()} on {platform.machine()}, {build}")
    walls, cpus = [], []
    for _ in range(args.repeat):
        with_tokens = await one_run(args.tokens)
        without = await one_run(0)
        walls.append((with_tokens[0] - without[0]) / args.tokens * 1e6)
        cpus.append((with_tokens[1] - without[1]) / args.tokens * 1e6)
    print(f"token to SSE frame: {statistics.median(walls):.2f} us/token wall, "
          f"{statistics.median(cpus):.2f} us/token cpu (median of {args.repeat}; "
          f"frame {with_tokens[2] // max(args.tokens, 1)} bytes)")
    print(f"event to broker frame alone: {await publish_step():.2f} us/token "
          f"(min of {ROUNDS} rounds of {CALLS:,})")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

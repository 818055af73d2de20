"""Per-event cost of the AG-UI and AI SDK dialects beside the native Agent Server stream.

    .venv/bin/python bench/dialects_fanout.py                    # C = 100 and 1000 clients
    .venv/bin/python bench/dialects_fanout.py --clients 1000 --tokens 200 --repeats 5

One run's broker events (a `run_start` marker, a node streaming T tokens from a model with a
custom event every 50, its `node_end` with the state, the `run_end` marker: the shapes the
runner and the run manager publish) go through an in-process `stream.Broker` to C clients of
one kind at a time, each reading the response body the server would send, to its last byte:

- broker-sse: the broker's own SSE frames, every event as is (what `broker.sse_handler`
  writes; the floor, no translation);
- native: `/runs/stream`'s body (`messages-tuple`, `updates` and `custom` modes: the tokens,
  the node's update, the custom events);
- ag-ui: `POST /ag-ui/{graph_id}`'s body; ai-sdk: `POST /ai-sdk/{graph_id}`'s body.

Every client subscribes before the burst; the events are published back to back in bursts of
100 (the loop runs between bursts, as a model's stream lets it). CPU seconds of the process
from the first publish until every client has its last byte, divided by C * (events in the
run), is the cost per delivered event, broker included; the ratio to native is the figure
(median over the repeats, all kinds measured in the same process and run, interleaved).
No HTTP: the socket write is the same for every kind, and only the adapter differs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from chronos.server._metrics import ServerMetrics
from chronos.server._run_record import RunInfo
from chronos.server._stream import open_subscription, run_stream_response
from chronos.server._stream_modes import RUN_END, RUN_START
from chronos.server.dialects import agui, aisdk
from chronos.server.dialects._run import RunSource
from chronos.stream import Broker, Event, Subscription
from chronos.stream._wire import event_frame

KINDS = ("broker-sse", "native", "ag-ui", "ai-sdk")

_METRICS = ServerMetrics()  # off, as a server without a meter or Prometheus has it


def run_events(run_id: str, thread_id: str, tokens: int) -> list[tuple[str, Event]]:
    """The run's broker events, with the topic each goes to (tokens have their own)."""
    base = {"run_id": run_id, "session_id": thread_id, "seq": 0, "timestamp": time.time(),
            "state": None, "error": "", "name": "", "path": []}
    message = {"id": "u1", "role": "user", "content": "tell me a story"}
    out = [(thread_id, Event(RUN_START, {"run_id": run_id, "before": {}, "next": ["respond"],
                                         "values": {"messages": [message]}})),
           (thread_id, Event("node_start", {**base, "type": "node_start",
                                            "node_id": "respond"}))]
    words = []
    for i in range(tokens):
        word = f"word{i} "
        words.append(word)
        delta = {"message_id": "msg-1", "content": word, "reasoning": "",
                 "tool_call_deltas": [], "tool_calls": []}
        out.append((thread_id + "/tokens", Event("token", {
            **base, "type": "token", "node_id": "respond", "data": delta})))
        if i % 50 == 0:
            out.append((thread_id, Event("custom", {**base, "type": "custom",
                                                    "node_id": "respond", "name": "progress",
                                                    "data": {"done": i}})))
    answer = {"id": "msg-1", "role": "assistant", "content": "".join(words)}
    out.append((thread_id, Event("node_end", {
        **base, "type": "node_end", "node_id": "respond", "data": {"messages": [answer]},
        "state": {"messages": [message, answer]}})))
    out.append((thread_id, Event(RUN_END, {"run_id": run_id, "status": "success",
                                           "error": None, "error_type": None})))
    return out


def body(kind: str, broker: Broker, run_id: str, thread_id: str) -> AsyncIterable[Any]:
    """The response body one client of `kind` reads, subscribed now."""
    subscription = open_subscription(broker, thread_id)
    if kind == "broker-sse":
        return raw_frames(subscription)
    if kind == "native":
        response = run_stream_response(
            run_id, subscription, modes=("messages-tuple", "updates", "custom"),
            subgraphs=False, started=False, send_metadata=True, metrics=_METRICS)
        return response.body_iterator
    info = RunInfo(run_id, thread_id, "running", {}, None, (), False, None, time.time(), "bench")
    source = RunSource(None, info, subscription, cancel_on_disconnect=False)  # type: ignore[arg-type]
    if kind == "ag-ui":
        return agui._frames(source, agui.AguiTranslator(thread_id, run_id))
    return aisdk._frames(source, aisdk.UIMessageTranslator(run_id))


async def raw_frames(subscription: Subscription) -> AsyncIterator[bytes]:
    async with subscription:
        while True:
            batch = await subscription.receive_batch(timeout=10)
            yield b"".join(event_frame(e) for e in batch)
            if any(e.type == RUN_END for e in batch):
                return


async def drain(chunks: AsyncIterable[Any]) -> int:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
    return size


async def measure(kind: str, clients: int, tokens: int) -> tuple[float, int, int]:
    """(CPU seconds, events in the run, bytes one client read) for one burst."""
    broker = Broker(max_pending=tokens * 2 + 100)
    run_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
    events = run_events(run_id, thread_id, tokens)
    readers = [asyncio.create_task(drain(body(kind, broker, run_id, thread_id)))
               for _ in range(clients)]
    await asyncio.sleep(0.05)  # every body has started: subscribed, waiting
    gc.collect()
    start = time.process_time()
    for i, (topic, event) in enumerate(events):
        broker.publish(event, topic)
        if i % 100 == 99:
            await asyncio.sleep(0)
    sizes = await asyncio.gather(*readers)
    cpu = time.process_time() - start
    await broker.aclose()
    return cpu, len(events), sizes[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{args.tokens} tokens a run, {args.repeats} repeats, kinds interleaved")
    for clients in args.clients:
        per_event: dict[str, list[float]] = {k: [] for k in KINDS}
        sizes: dict[str, int] = {}
        for _ in range(args.repeats):
            for kind in KINDS:
                cpu, count, size = await measure(kind, clients, args.tokens)
                per_event[kind].append(cpu / (clients * count) * 1e6)
                sizes[kind] = size
        native = statistics.median(per_event["native"])
        print(f"\nC = {clients}: CPU us per delivered event (median of {args.repeats}; min)")
        for kind in KINDS:
            median = statistics.median(per_event[kind])
            print(f"  {kind:10} {median:6.2f} us  (min {min(per_event[kind]):6.2f})  "
                  f"x{median / native:4.2f} native   {sizes[kind]:7} bytes a client")


if __name__ == "__main__":
    asyncio.run(main())

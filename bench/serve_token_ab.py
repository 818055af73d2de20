"""Two checkouts' served-token paths side by side: CPU ns and instructions per streamed token.

    .venv/bin/python bench/serve_token_ab.py /work/main .                 # CPU time, 3 rounds
    .venv/bin/python bench/serve_token_ab.py /work/main . --instructions  # valgrind counts

The server's part of a streamed token, without HTTP: a run's `token` event (the payload
`graph.event_payload` makes of a `MessageDelta`) published through the server's `TokenTopics`
(with the run's metrics observer) to an in-process `Broker`, read by a run stream's
subscription (`open_subscription`) and translated into its SSE frame (`_stream._translate`,
modes custom + messages-tuple, as `bench/serve_ab.py` streams). One token per read, as under
the 50-user load. Each argument is a checkout with its own `.venv`; the rounds alternate, each
in a fresh process. `--instructions` counts instructions under valgrind: a run of 20,500
tokens less one of 500, over 20,000 (see `bench/custom_events_ab.py`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._ab import compare, run_workload, summary

_WORKLOAD = """
import asyncio, gc, os, statistics, time
from chronos import stream
from chronos.graph import MessageDelta
from chronos.server._metrics import ServerMetrics
from chronos.server._retention import TokenTopics
from chronos.server._stream import _translate, open_subscription
from chronos.server._stream_modes import RUN_START, RunTranslator

COUNT, REPEAT = int(os.environ["COUNT"]), int(os.environ["REPEAT"])

def read(translated, metrics):
    # Since tokcpu2 the stream counts a write's events itself (one write per read here);
    # before, `_translate` counted them and returned the frames alone.
    if type(translated) is tuple:
        translated, delivered = translated
        metrics.delivered(delivered)
    return sum(map(len, translated))

async def once():
    metrics = ServerMetrics()
    broker = stream.Broker(replay_events=256)
    publisher = TokenTopics(broker, metrics.run_events("agent"))
    subscription = open_subscription(broker, "thread")
    translator = RunTranslator("run", ("custom", "messages-tuple"), subgraphs=False,
                               started=False)
    broker.publish(stream.Event(RUN_START, {"run_id": "run", "values": {}}), "thread")
    read(_translate(await subscription.receive_batch(), translator, metrics), metrics)
    sent = 0
    cpu = time.process_time()
    for seq in range(COUNT):
        payload = {"type": "token", "node_id": "write", "seq": seq, "timestamp": 1.5e9 + seq,
                   "run_id": "run", "session_id": "thread", "state": None, "error": None,
                   "data": MessageDelta("msg-0123456789abcdef", f" word{seq}"), "name": None,
                   "path": []}
        publisher.publish(stream.Event("token", payload), "thread")
        sent += read(_translate(await subscription.receive_batch(), translator, metrics),
                     metrics)
    spent = time.process_time() - cpu
    assert sent > COUNT * 300, sent
    await broker.aclose()
    return spent / COUNT * 1e9

async def main():
    runs = []
    for _ in range(REPEAT):
        gc.collect()
        runs.append(await once())
    return statistics.median(runs)

print(asyncio.run(main()))
"""


def _run(checkout: Path, count: int, repeat: int, valgrind: bool) -> float:
    return run_workload(checkout, _WORKLOAD, {"COUNT": str(count), "REPEAT": str(repeat)},
                        valgrind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7, help="runs per round (CPU time)")
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    found = compare(
        args.checkouts,
        lambda checkout: _run(checkout, 20_000, args.repeat, valgrind=False),
        lambda checkout, count: _run(checkout, count, 1, valgrind=True),
        rounds=args.rounds, instructions=args.instructions, sizes=(500, 20_500))
    unit = "instructions" if args.instructions else "CPU ns"
    for checkout, values in found.items():
        print(f"{checkout}: {unit} per streamed token, {summary(values, '.0f')}")

if __name__ == "__main__":
    main()

"""What the in-process broker's replay window costs: memory per retained event, publish time.

    .venv/bin/python bench/broker_retained.py                       # 1 topic x 102,400 events
    .venv/bin/python bench/broker_retained.py --topics 10000 --events 1024

Publishes `topics` x `events` small events (about 90 bytes of JSON each, the shape of a
graph `node_end`) round-robin over the topics, into a `stream.Broker` whose window holds them
all (`replay_events=events`, `max_topics=topics`, no age limit), with nobody subscribed.
Reports the process's RSS growth (from /proc/self/statm) against the bytes the broker retains
(its frames), and the mean time per `publish()` (wall clock, one thread). Then one
`Last-Event-ID: 0-0` resume to every topic, which is bounded by `max_pending`: its time, and
the longest time one publisher on another thread waited for the lock meanwhile.
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time

from chronos.stream import Broker, Event


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _retained_bytes(broker: Broker) -> int | None:
    logs = getattr(broker, "_logs", {})
    frames = [getattr(log, "frames", None) for log in logs.values()]
    if any(f is None for f in frames):
        return None  # a broker that retains events, not frames (before this change)
    return sum(len(frame) for log_frames in frames if log_frames for frame in log_frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1)
    parser.add_argument("--events", type=int, default=102_400, help="per topic")
    args = parser.parse_args()
    # No age limit: filling 10,000 topics takes longer than the default 300 s on a busy machine.
    broker = Broker(
        replay_events=args.events, replay_seconds=1e9, max_topics=args.topics + 1  # + "elsewhere"
    )
    names = [f"session-{t:05d}" for t in range(args.topics)]
    gc.collect()
    before = _rss()
    started = time.perf_counter()
    for i in range(args.events):
        for name in names:
            broker.publish(Event("node_end", {"node": "extract", "status": "done", "i": i}), name)
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = _rss() - before
    count = args.topics * args.events
    retained = _retained_bytes(broker)
    print(f"{args.topics:,} topics x {args.events:,} events = {count:,} retained")
    print(f"publish: {elapsed / count * 1e6:.2f} us per event ({elapsed:.1f} s)")
    print(f"RSS growth: {grown / 2**20:,.1f} MiB = {grown / count:,.0f} B per event")
    if retained is not None:
        print(f"retained frames: {retained / 2**20:,.1f} MiB = {retained / count:,.0f} B per event;"
              f" RSS / frames = {grown / retained:.2f}")

    waits: list[float] = []
    stop = threading.Event()

    def publisher() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            broker.publish(Event("live", None), "elsewhere")
            waits.append(time.perf_counter() - start)
            time.sleep(0.0005)

    thread = threading.Thread(target=publisher)
    thread.start()
    time.sleep(0.05)
    start = time.perf_counter()
    subscription = broker.subscribe("resume", last_event_id="0-0")
    replay = time.perf_counter() - start
    stop.set()
    thread.join()
    pending = subscription.statistics().pending
    print(f"resume from 0-0 to every topic: {replay * 1e3:,.1f} ms, {pending:,} events queued;"
          f" longest publish() on another thread meanwhile: {max(waits) * 1e3:,.1f} ms"
          f" ({len(waits)} publishes)")


if __name__ == "__main__":
    main()

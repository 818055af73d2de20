"""The guide's "SSE Broker" example without HTTP: subscribe a client, publish from anywhere.

    .venv/bin/python examples/broker_publish_subscribe.py [--events 6]

A client subscribes first (it receives what is published after that), then events are
published from this coroutine and from a plain thread with no event loop; the client prints
each with the id the broker gave it, and the subscription ends when it is unsubscribed.
"""

import argparse
import asyncio
import threading

from chronos import stream


async def main(count):
    broker = stream.Broker()

    # Subscribe a client
    subscription = broker.subscribe("client-123")
    try:
        # Publish events from anywhere: here, then from a thread.
        broker.publish(stream.Event(type="node_end", data={"node": "extract", "status": "done"}))

        def worker():
            for n in range(1, count):
                broker.publish(stream.Event(type="progress", data={"node": "answer", "n": n}))

        thread = threading.Thread(target=worker)
        thread.start()

        received = 0
        async for event in subscription:
            print(f"{event.id} [{event.type}] {event.data}", flush=True)
            received += 1
            if received == count:
                break
        thread.join()
    finally:
        broker.unsubscribe("client-123")  # the guide's `defer broker.Unsubscribe(...)`
    print(f"received={received} closed={subscription.closed}")
    await broker.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6, help="how many events to publish")
    asyncio.run(main(parser.parse_args().events))

"""The guide's "SSE Broker" and "HTTP Handler" examples: events to a browser over SSE.

    .venv/bin/python examples/sse_broker.py            # then open http://127.0.0.1:8000/

A thread publishes the events of a pretend pipeline, one a second; an in-process subscriber
prints them, and every browser tab on the page logs them to its console with the guide's
`EventSource` snippet. `--events N` stops after N events, `--interval` sets the pace.
"""

import argparse
import socket
import threading

import anyio
import anyio.abc
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from chronos import stream

PAGE = """<!doctype html>
<title>chronos events</title>
<p>Open the console to see the events.</p>
<script>
const source = new EventSource("/events");
source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    console.log(data.type, data);
};
</script>
"""

broker = stream.Broker()


async def page(request: object) -> HTMLResponse:
    return HTMLResponse(PAGE)


# Every connection to /events gets a subscription of its own; pass an id
# (`broker.sse_handler("client-123")`) to have one fixed subscription instead.
app = Starlette(routes=[Route("/", page), Route("/events", broker.sse_handler())])


async def print_events(*, task_status: anyio.abc.TaskStatus[None]) -> None:
    # Subscribe a client; leaving the block unsubscribes it.
    async with broker.subscribe("client-123") as subscription:
        task_status.started()  # subscribed: from here on, nothing published is missed
        async for event in subscription:
            print(f"[{event.type}] {event.data}", flush=True)


def publish_events(count: int | None, interval: float, done: threading.Event) -> None:
    # Publish events from anywhere: this is a plain thread, no event loop.
    nodes = ["extract", "summarise", "answer"]
    n = 0
    while count is None or n < count:
        node = nodes[(n // 2) % len(nodes)]
        status = "running" if n % 2 == 0 else "done"
        kind = "node_start" if n % 2 == 0 else "node_end"
        broker.publish(stream.Event(type=kind, data={"node": node, "status": status, "n": n}))
        n += 1
        if done.wait(interval):
            return
    done.set()


class Server(uvicorn.Server):
    # uvicorn waits for open responses before it stops and tells them nothing, so close the
    # broker as shutdown begins: every event stream then ends at once, cleanly.
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await broker.aclose()
        await super().shutdown(sockets)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--events", type=int, default=None, help="stop after this many")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between events")
    args = parser.parse_args()

    server = Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning"))
    done = threading.Event()  # set when the publisher has finished, or the server has stopped

    async def serve() -> None:
        await server.serve()  # until Ctrl+C, or `should_exit`
        done.set()

    async with anyio.create_task_group() as group:
        await group.start(print_events)
        print(f"serving on http://127.0.0.1:{args.port}/", flush=True)
        group.start_soon(serve)
        publisher = threading.Thread(
            target=publish_events, args=(args.events, args.interval, done)
        )
        publisher.start()
        await anyio.to_thread.run_sync(done.wait)
        server.should_exit = True
    publisher.join()


if __name__ == "__main__":
    anyio.run(main)

"""The handler ends a stream by cancelling its own task, and tells that from anyone else's.

What must hold: a disconnect or a stalled write ends the response quietly (the handler
returns, the task carries no cancellation request), while a cancellation from outside (the
server shutting down) propagates, even when it arrives together with the handler's own; and
in every case the subscription is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from chronos import stream

pytestmark = pytest.mark.anyio


class Client:
    """A fake ASGI connection: `disconnect()` ends `receive`; `stall()` blocks `send`."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.bodies: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        self.bodies.append(message.get("body", b""))

    def disconnect(self) -> None:
        self.gone.set()

    def stall(self) -> None:
        self.writable.clear()


def start(handler: stream.SSEHandler, client: Client) -> asyncio.Task[None]:
    scope = {"type": "http", "method": "GET", "headers": [], "query_string": b"", "path": "/"}
    return asyncio.get_running_loop().create_task(handler(scope, client.receive, client.send))


async def until(condition: Any) -> None:
    with anyio.fail_after(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_disconnect_ends_the_stream_quietly() -> None:
    broker = stream.Broker()
    client = Client()
    task = start(broker.sse_handler(), client)
    await until(lambda: broker.statistics().subscriptions == 1)
    client.disconnect()
    await task  # returns: no CancelledError leaks out
    assert task.cancelling() == 0
    assert broker.statistics().subscriptions == 0


async def test_stalled_write_is_dropped_after_send_timeout() -> None:
    broker = stream.Broker()
    client = Client()
    task = start(broker.sse_handler(send_timeout=0.2), client)
    await until(lambda: broker.statistics().subscriptions == 1)
    client.stall()
    broker.publish(stream.Event("x"))
    with anyio.fail_after(5):
        await task
    assert task.cancelling() == 0
    assert broker.statistics().subscriptions == 0


async def test_ending_the_response_is_bounded_by_send_timeout() -> None:
    broker = stream.Broker()
    client = Client()
    task = start(broker.sse_handler(send_timeout=0.2), client)
    await until(lambda: broker.statistics().subscriptions == 1)
    client.stall()
    await broker.aclose()  # the stream ends: one last write, to a client that does not read
    with anyio.fail_after(5):
        await task
    assert task.cancelling() == 0


async def test_outside_cancellation_propagates() -> None:
    broker = stream.Broker()
    client = Client()
    task = start(broker.sse_handler(), client)
    await until(lambda: broker.statistics().subscriptions == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.statistics().subscriptions == 0


@pytest.mark.parametrize("steps", range(6))
async def test_outside_cancellation_together_with_a_disconnect_propagates(steps: int) -> None:
    """The server cancels `steps` loop iterations after the client went away: before, while
    or after the handler cancels itself. Unless the handler had returned already, the
    server's cancellation must come out."""
    broker = stream.Broker()
    client = Client()
    task = start(broker.sse_handler(), client)
    await until(lambda: broker.statistics().subscriptions == 1)
    client.disconnect()
    for _ in range(steps):
        await asyncio.sleep(0)
    if task.cancel():
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        assert task.exception() is None  # it had returned: the disconnect won
    assert broker.statistics().subscriptions == 0

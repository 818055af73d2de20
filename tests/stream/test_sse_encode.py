"""The SSE handler joins a batch of frames once for every connection woken by the same events.

What must hold: a connection's body is exactly its own events' frames, whatever the other
connections of the same handler were sent just before (same length, same first and last
event, different events in between included).
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from chronos import stream
from chronos.stream._wire import encode_retry, event_frame
from tests.stream.conftest import serve
from tests.stream.reading import take

pytestmark = pytest.mark.anyio


async def body_of(response: httpx.Response, length: int) -> bytes:
    """The first `length` bytes of a streamed body (and no more arrive with them)."""
    body = b""
    with anyio.fail_after(10):
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= length:
                return body
    return body


@pytest.mark.parametrize("named", [False, True])
async def test_each_body_is_its_own_events(named: bool) -> None:
    broker = stream.Broker()
    app = Starlette(routes=[Route("/events", broker.sse_handler(named_events=named))])
    watcher = broker.subscribe("watcher")
    queries = {"xy": "?topic=x&topic=y", "xz": "?topic=x&topic=z", "all": ""}
    async with (
        serve(app) as server,
        httpx.AsyncClient(base_url=server.url) as client,
        client.stream("GET", "/events" + queries["xy"]) as xy,
        client.stream("GET", "/events" + queries["xz"]) as xz,
        client.stream("GET", "/events" + queries["all"]) as everything,
    ):
        with anyio.fail_after(10):
            while broker.statistics().subscriptions < 4:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        # Every connection wakes to the same events at once: xy and xz to three each, the
        # same first and last, a different one in the middle.
        for topic in ["x", "y", "z", "x"]:
            broker.publish(stream.Event("tick", {"topic": topic}), topic=topic)
        published = await take(watcher, 4)
        for response, topics in [(xy, "xy"), (xz, "xz"), (everything, "xyz")]:
            mine = [event for event in published if event.topic in topics]
            expected = encode_retry(3000) + b"".join(
                event_frame(event, named=named) for event in mine
            )
            assert await body_of(response, len(expected)) == expected
    await broker.aclose()

"""The SSE handler joins a batch of frames once for every connection woken by the same events.

What must hold: a connection's body is exactly its own events' frames, whatever the other
connections of the same handler were sent just before (same length, same first and last
event, different events in between included).
"""

from __future__ import annotations

import pytest

from chronos import stream
from chronos.stream._wire import event_frame

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("named", [False, True])
async def test_each_body_is_its_own_events(named: bool) -> None:
    broker = stream.Broker()
    handler = broker.sse_handler(named_events=named)
    xy = broker.subscribe("xy", ["x", "y"])
    xz = broker.subscribe("xz", ["x", "z"])
    everything = broker.subscribe("all")
    for topic in ["x", "y", "z", "x"]:
        broker.publish(stream.Event("tick", {"topic": topic}), topic=topic)
    on_xy, on_xz, on_all = [await s.receive_batch(timeout=1) for s in (xy, xz, everything)]
    # xy and xz: 3 events each, the same first and last, a different one in the middle.
    assert (len(on_xy), len(on_xz), len(on_all)) == (3, 3, 4)
    assert [a is b for a, b in zip(on_xy, on_xz, strict=True)] == [True, False, True]
    for batch in [on_xy, on_xz, on_xy, on_all, on_xz, list(on_xz)]:
        expected = b"".join(event_frame(event, named=named) for event in batch)
        assert handler._encode(batch) == expected
    await broker.aclose()

"""In-process broker behaviour: the guide's all-topic usage, replay limits by age and topics.

What every broker must do is in test_broker_contract.py, run on this broker and on Redis.
"""

from __future__ import annotations

import anyio
import pytest

from chronos.stream import GAP, Broker, Event, Subscription
from chronos.stream._ids import parse_id

pytestmark = pytest.mark.anyio


async def take(subscription: Subscription, count: int) -> list[Event]:
    events: list[Event] = []
    with anyio.fail_after(10):
        while len(events) < count:
            batch = await subscription.receive_batch()
            assert batch, "subscription ended early"
            events.extend(batch)
    return events


async def test_guide_usage_every_subscriber_gets_every_event_in_order() -> None:
    broker = Broker()
    first = broker.subscribe("client-123")
    second = broker.subscribe("client-456")
    for i in range(100):
        broker.publish(Event(type="node_end", data={"node": "extract", "i": i}))
    for subscription in (first, second):
        events = await take(subscription, 100)
        assert [e.data["i"] for e in events] == list(range(100))
        assert {e.topic for e in events} == {"default"}
    broker.unsubscribe("client-123")
    assert first.closed
    assert [e async for e in first] == []


async def test_ids_increase_strictly_and_parse_back() -> None:
    broker = Broker(max_pending=5000)
    subscription = broker.subscribe("s")
    for i in range(2000):
        broker.publish(Event("t", i), topic=f"topic-{i % 3}")
    events = await take(subscription, 2000)
    positions = [parse_id(e.id or "") for e in events]
    assert positions == sorted(positions)
    assert len(set(positions)) == 2000


async def test_topics_and_all_topics() -> None:
    broker = Broker()
    one = broker.subscribe("one", ["a"])
    two = broker.subscribe("two", ["a", "b"])
    every = broker.subscribe("every")
    broker.publish(Event("x", 1), topic="a")
    broker.publish(Event("x", 2), topic="b")
    broker.publish(Event("x", 3, topic="c"))
    assert [e.data for e in await take(one, 1)] == [1]
    assert [e.data for e in await take(two, 2)] == [1, 2]
    assert [(e.data, e.topic) for e in await take(every, 3)] == [(1, "a"), (2, "b"), (3, "c")]
    assert one.statistics().pending == 0


async def test_resume_beyond_the_replay_buffer_starts_with_a_gap() -> None:
    broker = Broker(replay_events=5)
    watcher = broker.subscribe("w")
    for i in range(20):
        broker.publish(Event("x", i))
    seen = await take(watcher, 20)
    resumed = broker.subscribe("r", last_event_id=seen[2].id)
    events = await take(resumed, 6)
    assert events[0].type == GAP
    assert events[0].data["reason"] == "expired"
    assert events[0].id == seen[2].id
    assert [e.data for e in events[1:]] == list(range(15, 20))


async def test_resume_beyond_the_replay_age_starts_with_a_gap() -> None:
    broker = Broker(replay_seconds=0.05)
    watcher = broker.subscribe("w")
    broker.publish(Event("x", 0))
    broker.publish(Event("x", 1))
    first, second = await take(watcher, 2)
    await anyio.sleep(0.1)
    broker.publish(Event("x", 2))  # ages out 0 and 1
    exact = broker.subscribe("exact", last_event_id=second.id)
    assert [(e.type, e.data) for e in await take(exact, 1)] == [("x", 2)]
    resumed = broker.subscribe("r", last_event_id=first.id)
    events = await take(resumed, 2)
    assert [(e.type, e.data) for e in events][1:] == [("x", 2)]
    assert events[0].data["reason"] == "expired"


async def test_resume_from_an_unknown_or_ancient_id() -> None:
    broker = Broker()
    broker.publish(Event("x", 0))
    future = broker.subscribe("f", last_event_id="99999999999999-0")
    [gap] = await take(future, 1)
    assert (gap.type, gap.data["reason"]) == (GAP, "unknown")
    ancient = broker.subscribe("a", last_event_id="0-0")  # before this broker existed
    gap, event = await take(ancient, 2)
    assert (gap.data["reason"], event.data) == ("expired", 0)


async def test_replay_memory_is_bounded_by_topics() -> None:
    broker = Broker(replay_events=2, max_topics=3)
    for topic in "abcde":
        for i in range(5):
            broker.publish(Event("x", i), topic=topic)
    stats = broker.statistics()
    assert (stats.topics, stats.retained) == (3, 6)
    # A resume on a forgotten topic cannot be proven complete, so it says so.
    resumed = broker.subscribe("r", ["a"], last_event_id="1-0")
    [gap] = await take(resumed, 1)
    assert gap.data["reason"] == "expired"

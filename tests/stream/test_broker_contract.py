"""The broker contract, run on every broker: in-process and Redis (the real one on loopback).

Only behaviour both promise is here: publish, subscribe by topics or to every topic, order,
ids, resume, gaps, overflow, threads, closing. What only one of them does (forgetting topics,
clock-based ids, sharing through Redis) is tested in `test_broker.py` and
`test_redis_broker.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import numpy
import orjson
import pytest

from chronos import graph
from chronos.errors import (
    BrokerError,
    EventNotSerializable,
    InvalidLastEventID,
    SubscriptionExists,
    SubscriptionOverflow,
)
from chronos.stream import GAP, Broker, BrokerProtocol, Event, Subscription
from chronos.stream._ids import parse_id
from chronos.stream.redis import RedisBroker
from tests.stream.reading import take
from tests.stream.redis_helpers import redis_brokers, unique_prefix

pytestmark = pytest.mark.anyio

MakeBroker = Callable[..., BrokerProtocol]


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Make brokers of one kind; every broker made is closed (and its keys deleted) after."""
    if request.param == "memory":
        made: list[Broker] = []

        def memory(**options: Any) -> BrokerProtocol:
            made.append(Broker(**options))
            return made[-1]

        yield memory
        for broker in made:
            await broker.aclose()
        return
    async with redis_brokers() as brokers:
        prefix = unique_prefix()

        def redis(**options: Any) -> BrokerProtocol:
            brokers.append(RedisBroker(key_prefix=prefix, **options))
            return brokers[-1]

        yield redis


async def take_until(subscription: Subscription, last_data: object) -> list[Event]:
    events: list[Event] = []
    with anyio.fail_after(10):
        while not events or events[-1].data != last_data:
            batch = await subscription.receive_batch()
            assert batch, "subscription ended early"
            events.extend(batch)
    return events


async def settle(broker: BrokerProtocol, topic: str) -> list[Event]:
    """Publish a marker and wait for it, so every earlier publish has been stored."""
    probe = broker.subscribe(f"probe-{time.monotonic_ns()}", [topic])
    broker.publish(Event("marker"), topic=topic)
    events = await take_until_type(probe, "marker")
    await probe.aclose()
    return events


async def take_until_type(subscription: Subscription, type_: str) -> list[Event]:
    events: list[Event] = []
    with anyio.fail_after(10):
        while not events or events[-1].type != type_:
            events.extend(await subscription.receive_batch(1))
    return events


async def test_every_subscriber_gets_every_event_in_order(make_broker: MakeBroker) -> None:
    broker = make_broker()
    first = broker.subscribe("client-123", ["session"])
    second = broker.subscribe("client-456", ["session"])
    for i in range(100):
        broker.publish(Event(type="node_end", data={"node": "extract", "i": i}), topic="session")
    for subscription in (first, second):
        events = await take(subscription, 100)
        assert [e.data["i"] for e in events] == list(range(100))
        assert {e.topic for e in events} == {"session"}
    broker.unsubscribe("client-123")
    assert first.closed
    assert [e async for e in first] == []


async def test_ids_increase_strictly_across_topics(make_broker: MakeBroker) -> None:
    broker = make_broker(max_pending=1000)
    subscription = broker.subscribe("s", ["t0", "t1", "t2"])
    for i in range(300):
        broker.publish(Event("t", i), topic=f"t{i % 3}")
    events = await take(subscription, 300)
    positions = [parse_id(e.id or "") for e in events]
    assert positions == sorted(positions)
    assert len(set(positions)) == 300
    for n in range(3):
        assert [e.data for e in events if e.topic == f"t{n}"] == list(range(n, 300, 3))


async def test_a_subscription_to_every_topic_follows_old_and_new_topics(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(max_pending=1000)
    broker.publish(Event("before"), topic="old")  # the topic exists before the subscription
    await settle(broker, "old")
    everything = broker.subscribe("everything")
    assert everything.topics is None
    one = broker.subscribe("one", ["old"])
    for i in range(300):  # topics new and old, interleaved
        broker.publish(Event("x", i), topic="old" if i % 3 == 0 else f"new-{i % 7}")
    broker.publish(Event("end"), topic=f"brand-new-{time.monotonic_ns()}")
    events = await take_until_type(everything, "end")
    # Redis may also deliver events from up to `clock_skew` before subscribing.
    events = [e for e in events if e.type == "x"]
    # Every event once, each topic in order (across topics, Redis delivers a topic it
    # discovers from its first event, so that one may come after later events of others).
    assert sorted(e.data for e in events) == list(range(300))
    for topic in {e.topic for e in events}:
        positions = [parse_id(e.id or "") for e in events if e.topic == topic]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)
    named = [e.data for e in await take_until(one, 297) if e.type == "x"]
    assert named == list(range(0, 300, 3))


async def test_a_subscription_to_every_topic_resumes_exactly(make_broker: MakeBroker) -> None:
    broker = make_broker(max_pending=1000)
    watcher = broker.subscribe("watcher")
    for i in range(100):
        broker.publish(Event("x", i), topic=f"t{i % 4}")
    seen = await take(watcher, 100)
    resumed = broker.subscribe("again", last_event_id=seen[49].id)
    events = await take(resumed, 50)
    assert [(e.id, e.data) for e in events] == [(e.id, e.data) for e in seen[50:]]


async def test_topics_filter(make_broker: MakeBroker) -> None:
    broker = make_broker()
    one = broker.subscribe("one", ["a"])
    two = broker.subscribe("two", ["a", "b"])
    broker.publish(Event("x", 1), topic="a")
    broker.publish(Event("x", 2), topic="b")
    broker.publish(Event("x", 3, topic="c"))
    broker.publish(Event("x", 4, topic="a"))
    assert [e.data for e in await take(one, 2)] == [1, 4]
    assert [(e.data, e.topic) for e in await take(two, 3)] == [(1, "a"), (2, "b"), (4, "a")]
    assert one.statistics().pending == 0


async def test_duplicate_id_is_an_error_unless_replacing(make_broker: MakeBroker) -> None:
    broker = make_broker()
    old = broker.subscribe("client-123", ["a"])
    with pytest.raises(SubscriptionExists) as caught:
        broker.subscribe("client-123", ["a"])
    assert caught.value.subscription_id == "client-123"
    new = broker.subscribe("client-123", ["a"], replace=True)
    assert old.closed
    assert not new.closed
    await old.aclose()  # closing the replaced one must not touch its successor
    broker.publish(Event("x"), topic="a")
    assert len(await take(new, 1)) == 1


async def test_resume_after_an_id_replays_exactly_what_followed(make_broker: MakeBroker) -> None:
    broker = make_broker()
    watcher = broker.subscribe("w", ["a", "b"])
    for i in range(10):
        broker.publish(Event("x", i), topic="a")
        broker.publish(Event("y", i), topic="b")
    seen = await take(watcher, 20)
    on_a = [e for e in seen if e.topic == "a"]
    resumed = broker.subscribe("r", ["a"], last_event_id=on_a[3].id)
    broker.publish(Event("x", 10), topic="a")
    assert [e.data for e in await take(resumed, 7)] == list(range(4, 11))
    assert resumed.statistics().pending == 0
    both = broker.subscribe("e", ["a", "b"], last_event_id=on_a[8].id)
    assert [(e.type, e.data) for e in await take(both, 4)] == [
        ("y", 8),
        ("x", 9),
        ("y", 9),
        ("x", 10),
    ]


async def test_resume_from_the_last_id_gets_only_new_events(make_broker: MakeBroker) -> None:
    broker = make_broker()
    watcher = broker.subscribe("w", ["a"])
    broker.publish(Event("x", 0), topic="a")
    [last] = await take(watcher, 1)
    resumed = broker.subscribe("r", ["a"], last_event_id=last.id)
    broker.publish(Event("x", 1), topic="a")
    assert [e.data for e in await take(resumed, 1)] == [1]


async def test_resume_beyond_retention_starts_with_a_gap(make_broker: MakeBroker) -> None:
    # Redis trims approximately (whole nodes of ~100 entries), so publish well past the bound
    # and check that what follows the gap is an unbroken run up to the newest event.
    broker = make_broker(replay_events=5, max_pending=1000)
    watcher = broker.subscribe("w", ["a"])
    seen: list[Event] = []
    for i in range(300):  # one at a time: the watcher itself must never fall behind
        broker.publish(Event("x", i), topic="a")
        seen.extend(await take(watcher, 1))
    resumed = broker.subscribe("r", ["a"], last_event_id=seen[2].id)
    events = await take_until(resumed, 299)
    assert events[0].type == GAP
    assert events[0].data["reason"] == "expired"
    assert events[0].id == seen[2].id
    data = [e.data for e in events[1:]]
    assert 5 <= len(data) < 297
    assert data == list(range(300 - len(data), 300))


async def test_resume_from_an_id_never_issued(make_broker: MakeBroker) -> None:
    broker = make_broker()
    broker.publish(Event("x", 0), topic="a")
    await settle(broker, "a")
    future = broker.subscribe("f", ["a"], last_event_id="99999999999999-0")
    [gap] = await take(future, 1)
    assert (gap.type, gap.data["reason"]) == (GAP, "unknown")
    # Then it follows live, although what is published now has smaller ids than the one
    # it gave (Redis may also deliver events from up to `clock_skew` before: no matter).
    broker.publish(Event("x", 1), topic="a")
    assert (await take_until(future, 1))[-1].data == 1


@pytest.mark.parametrize("bad", ["", "abc", "1-", "-1", "1-2-3", "1.5-0", "9" * 30 + "-0"])
async def test_malformed_last_event_id(make_broker: MakeBroker, bad: str) -> None:
    broker = make_broker()
    with pytest.raises(InvalidLastEventID) as caught:
        broker.subscribe("s", ["a"], last_event_id=bad)
    assert isinstance(caught.value, ValueError)
    broker.subscribe("s", ["a"])  # nothing was registered under that id


async def test_slow_subscriber_gets_a_gap_and_never_slows_the_others(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(max_pending=10)
    slow = broker.subscribe("slow", ["a"])
    fast = broker.subscribe("fast", ["a"])
    received: list[Event] = []
    for i in range(100):
        broker.publish(Event("x", i), topic="a")
        received.extend(await take(fast, 1))
    assert [e.data for e in received] == list(range(100))
    assert slow.statistics().pending == 10
    events = await take(slow, 11)
    assert events[0].type == GAP
    assert events[0].data == {
        "reason": "overflow",
        "missed": 90,
        "first_id": received[0].id,
        "last_id": received[89].id,
    }
    assert events[0].id == received[89].id
    assert [e.data for e in events[1:]] == list(range(90, 100))
    assert slow.statistics().dropped == 90


async def test_disconnect_policy_closes_a_slow_subscriber_and_it_resumes_exactly(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(max_pending=10)
    slow = broker.subscribe("slow", ["a"], overflow="disconnect")
    fast = broker.subscribe("fast", ["a"])
    received: list[Event] = []
    for i in range(5):
        broker.publish(Event("x", i), topic="a")
        received.extend(await take(fast, 1))
    first = await take(slow, 5)  # read while it keeps up
    for i in range(5, 100):
        broker.publish(Event("x", i), topic="a")
        received.extend(await take(fast, 1))  # the others never notice
    assert [e.data for e in received] == list(range(100))
    assert slow.closed  # it takes no more events...
    kept = await take(slow, 10)  # ...but what it holds is delivered, a gapless run
    assert [e.data for e in first + kept] == list(range(15))
    with pytest.raises(SubscriptionOverflow) as caught:
        await slow.receive_batch()
    assert caught.value.subscription_id == "slow"
    assert caught.value.last_event_id == kept[-1].id
    with pytest.raises(SubscriptionOverflow):
        await slow.__anext__()  # and again: it never looks like an ordinary end
    assert slow.statistics().dropped == 85
    # The id is free again at once, and a resume from the error's id misses nothing.
    resumed = broker.subscribe(
        "slow", ["a"], last_event_id=caught.value.last_event_id, max_pending=100
    )
    assert [e.data for e in await take(resumed, 85)] == list(range(15, 100))
    await slow.aclose()
    assert not resumed.closed  # closing the overflowed one leaves its successor alone
    broker.publish(Event("x", 100), topic="a")
    assert [e.data for e in await take(resumed, 1)] == [100]


async def test_publish_from_other_threads(make_broker: MakeBroker) -> None:
    broker = make_broker(max_pending=100_000)
    subscription = broker.subscribe("s", ["a"])

    def publish(thread: int) -> None:
        for i in range(250):
            broker.publish(Event("x", [thread, i]), topic="a")
            if i % 50 == 0:
                time.sleep(0.001)  # let the reader block in between

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    events = await take(subscription, 1000)
    for thread in threads:
        thread.join()
    for n in range(4):
        assert [e.data[1] for e in events if e.data[0] == n] == list(range(250))


async def test_publish_from_sync_code_without_a_loop(make_broker: MakeBroker) -> None:
    broker = make_broker()
    subscription = broker.subscribe("s", ["a"])
    await anyio.to_thread.run_sync(lambda: broker.publish(Event("from-sync", 1), topic="a"))
    assert [e.type for e in await take(subscription, 1)] == ["from-sync"]


async def test_a_cancelled_reader_loses_nothing(make_broker: MakeBroker) -> None:
    broker = make_broker()
    subscription = broker.subscribe("s", ["a"])
    with anyio.move_on_after(0.01):
        await subscription.receive_batch()
    broker.publish(Event("x", 1), topic="a")
    async for event in subscription:
        assert event.data == 1
        break


@pytest.mark.parametrize("value", [b"raw bytes", object(), {"nested": [1, {2, 3}]}])
async def test_unserialisable_data_is_refused_at_publish(
    make_broker: MakeBroker, value: object
) -> None:
    # The same typed error on both brokers (and still a TypeError), and nothing published.
    broker = make_broker()
    subscription = broker.subscribe("s", ["a"])
    with pytest.raises(EventNotSerializable) as refused:
        broker.publish(Event("x", value), topic="a")
    assert isinstance(refused.value, TypeError)
    assert refused.value.reason in {"bytes", "object", "set"}
    broker.publish(Event("y", 1), topic="a")
    assert [e.type for e in await take(subscription, 1)] == ["y"]


@dataclasses.dataclass
class _Point:
    x: int
    at: datetime.datetime


class _Colour(enum.Enum):
    RED = "red"


# What each broker delivers for data that is not already JSON: what its JSON holds.
_ONE_SERIALISATION = [
    (numpy.arange(3), [0, 1, 2]),
    (numpy.array([[1.5, 2.0]], dtype=numpy.float32), [[1.5, 2.0]]),
    (numpy.int64(7), 7),
    (datetime.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
    (datetime.date(2026, 1, 2), "2026-01-02"),
    (_Point(1, datetime.datetime(2026, 1, 2)), {"x": 1, "at": "2026-01-02T00:00:00"}),
    ((1, "two", (3,)), [1, "two", [3]]),
    ({1: "int key", "nan": math.nan, "inf": math.inf}, {"1": "int key", "nan": None, "inf": None}),
    (uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"),
    (_Colour.RED, "red"),
    # The documented fallback: a lone surrogate (UTF-8 cannot carry it) becomes U+FFFD; a
    # pair of surrogates, the character it spells.
    ("a\ud800b", "a\ufffdb"),
    ({"k\udfff": ["\ud83d\ude00", "ok"]}, {"k\ufffd": ["\U0001f600", "ok"]}),
]


@pytest.mark.parametrize(("value", "delivered"), _ONE_SERIALISATION)
async def test_one_serialisation_for_every_broker(
    make_broker: MakeBroker, value: object, delivered: object
) -> None:
    broker = make_broker()
    live = broker.subscribe("live", ["a"])
    broker.publish(Event("first"), topic="a")
    [first] = await take(live, 1)
    broker.publish(Event("value", value), topic="a")
    [event] = await take(live, 1)
    assert event.data == delivered
    assert orjson.loads(event.json())["data"] == delivered
    # A replay delivers the same again.
    replayed = broker.subscribe("replayed", ["a"], last_event_id=first.id)
    [again] = await take(replayed, 1)
    assert (again.id, again.data) == (event.id, delivered)


async def test_closing_the_broker_ends_every_subscription(make_broker: MakeBroker) -> None:
    broker = make_broker()
    subscriptions = [broker.subscribe(f"s{i}", ["a"] if i % 2 else ["b"]) for i in range(5)]
    results: list[list[Event]] = []

    async def read(subscription: Subscription) -> None:
        results.append([e async for e in subscription])

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for subscription in subscriptions:
                group.start_soon(read, subscription)
            await anyio.sleep(0.01)
            await broker.aclose()
    assert results == [[]] * 5
    await broker.aclose()  # idempotent
    with pytest.raises(BrokerError):
        broker.publish(Event("x"))
    with pytest.raises(BrokerError):
        broker.subscribe("late", ["a"])


async def test_subscription_is_an_async_context_manager(make_broker: MakeBroker) -> None:
    broker = make_broker()
    async with broker.subscribe("s", ["a"]) as subscription:
        broker.publish(Event("x", 1), topic="a")
        async for event in subscription:
            assert event.data == 1
            break
    assert subscription.closed
    await subscription.aclose()
    broker.subscribe("s", ["a"])  # the id is free again


async def test_a_lone_surrogate_in_a_run_completes_with_and_without_a_broker(
    make_broker: MakeBroker,
) -> None:
    # UTF-8 cannot carry "\ud800"; a run without a broker never encodes it, so a run with
    # one must not fail on it either: it arrives as U+FFFD.
    def write(state: dict[str, object]) -> dict[str, object]:
        return {"text": "half a pair: \ud800"}

    story = graph.StateGraph("story")
    story.add_node("write", write).set_entry_point("write").set_finish_point("write")
    compiled = story.compile()
    without = await graph.Runner(compiled, None).run("session-1", {})
    broker = make_broker()
    subscription = broker.subscribe("ui", ["session-1"])
    with_broker = await graph.Runner(compiled, None, broker=broker).run("session-1", {})
    assert (without.status, with_broker.status) == ("completed", "completed")
    assert with_broker.state == without.state == {"text": "half a pair: \ud800"}
    events = await take_until_type(subscription, "completed")
    [node_end] = [e for e in events if e.type == "node_end"]
    assert node_end.data["state"] == {"text": "half a pair: \ufffd"}

"""The in-process broker: fan-out, topics, ids, replay, overflow, threads, closing."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from chronos.errors import BrokerError, InvalidLastEventID, SubscriptionExists
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


async def test_duplicate_id_is_an_error_unless_replacing() -> None:
    broker = Broker()
    old = broker.subscribe("client-123")
    with pytest.raises(SubscriptionExists) as caught:
        broker.subscribe("client-123")
    assert caught.value.subscription_id == "client-123"
    new = broker.subscribe("client-123", replace=True)
    assert old.closed
    assert not new.closed
    await old.aclose()  # closing the replaced one must not touch its successor
    broker.publish(Event("x"))
    assert len(await take(new, 1)) == 1
    assert broker.statistics().subscriptions == 1


async def test_resume_after_an_id_replays_exactly_what_followed() -> None:
    broker = Broker()
    watcher = broker.subscribe("w")
    for i in range(10):
        broker.publish(Event("x", i), topic="a")
        broker.publish(Event("y", i), topic="b")
    seen = [e for e in await take(watcher, 20) if e.topic == "a"]
    resumed = broker.subscribe("r", ["a"], last_event_id=seen[3].id)
    broker.publish(Event("x", 10), topic="a")
    assert [e.data for e in await take(resumed, 7)] == list(range(4, 11))
    assert resumed.statistics().pending == 0
    every = broker.subscribe("e", last_event_id=seen[8].id)
    assert [(e.type, e.data) for e in await take(every, 4)] == [
        ("y", 8),
        ("x", 9),
        ("y", 9),
        ("x", 10),
    ]


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


@pytest.mark.parametrize("bad", ["", "abc", "1-", "-1", "1-2-3", "1.5-0", "9" * 30 + "-0"])
async def test_malformed_last_event_id(bad: str) -> None:
    broker = Broker()
    with pytest.raises(InvalidLastEventID) as caught:
        broker.subscribe("s", last_event_id=bad)
    assert isinstance(caught.value, ValueError)
    assert broker.statistics().subscriptions == 0


async def test_slow_subscriber_gets_a_gap_and_never_slows_the_others() -> None:
    broker = Broker(max_pending=10)
    slow = broker.subscribe("slow")
    fast = broker.subscribe("fast")
    received: list[Event] = []
    for i in range(100):
        broker.publish(Event("x", i))
        received.extend(await take(fast, 1))
    assert [e.data for e in received] == list(range(100))
    assert slow.statistics().pending == 10
    events = await take(slow, 11)
    gap = events[0]
    assert gap.type == GAP
    assert gap.data == {
        "reason": "overflow",
        "missed": 90,
        "first_id": received[0].id,
        "last_id": received[89].id,
    }
    assert gap.id == received[89].id
    assert [e.data for e in events[1:]] == list(range(90, 100))
    assert slow.statistics().dropped == 90


async def test_publish_from_other_threads_wakes_the_reader() -> None:
    broker = Broker(max_pending=100_000)
    subscription = broker.subscribe("s")

    def publish(thread: int) -> None:
        for i in range(500):
            broker.publish(Event("x", [thread, i]))
            if i % 100 == 0:
                time.sleep(0.001)  # let the reader block in between

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    events = await take(subscription, 2000)
    for thread in threads:
        thread.join()
    for n in range(4):
        assert [e.data[1] for e in events if e.data[0] == n] == list(range(500))


async def test_publish_from_sync_code_without_a_loop() -> None:
    broker = Broker()
    subscription = broker.subscribe("s")
    await anyio.to_thread.run_sync(lambda: broker.publish(Event("from-sync", 1)))
    assert [e.type for e in await take(subscription, 1)] == ["from-sync"]


async def test_a_cancelled_reader_loses_nothing() -> None:
    broker = Broker()
    subscription = broker.subscribe("s")
    with anyio.move_on_after(0.01):
        await subscription.receive_batch()
    broker.publish(Event("x", 1))
    async for event in subscription:
        assert event.data == 1
        break


async def test_unserialisable_data_is_refused_at_publish() -> None:
    broker = Broker()
    subscription = broker.subscribe("s")
    with pytest.raises(TypeError):
        broker.publish(Event("x", object()))
    assert subscription.statistics().pending == 0
    assert broker.statistics().retained == 0


async def test_closing_the_broker_ends_every_subscription() -> None:
    broker = Broker()
    subscriptions = [broker.subscribe(f"s{i}", ["a"] if i % 2 else None) for i in range(5)]
    results: list[list[Event]] = []

    async def read(subscription: Subscription) -> None:
        results.append([e async for e in subscription])

    with anyio.fail_after(5):
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
        broker.subscribe("late")


async def test_subscription_is_an_async_context_manager_with_idempotent_close() -> None:
    async with Broker() as broker:
        async with broker.subscribe("s", ["a"]) as subscription:
            broker.publish(Event("x", 1), topic="a")
            async for event in subscription:
                assert event.data == 1
                break
        assert subscription.closed
        await subscription.aclose()
        assert broker.statistics().subscriptions == 0
        broker.subscribe("s")  # the id is free again


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

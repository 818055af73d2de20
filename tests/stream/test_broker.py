"""In-process broker behaviour: replay limits by age and topics, retained memory, replay bounds.

What every broker must do is in test_broker_contract.py, run on this broker and on Redis.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import threading
import time
import tracemalloc

import anyio
import pytest

from chronos.errors import SubscriptionOverflow
from chronos.stream import GAP, Broker, Event
from chronos.stream._ids import parse_id
from chronos.stream._wire import event_frame
from tests.stream.reading import take

pytestmark = pytest.mark.anyio


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


def test_a_retained_event_costs_its_frame_and_little_more() -> None:
    # orjson's result for a small event holds a 4 KiB allocation; retaining events with it
    # cost ~4 KiB each whatever their size. The log keeps exact-size frames only.
    broker = Broker(replay_events=20_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            broker.publish(Event("node_end", {"node": "extract", "status": "done", "i": i}))
        gc.collect()
        retained_memory = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    replay = broker.subscribe("all", last_event_id="0-0", max_pending=20_000)
    frames = [event_frame(e) for e in replay._take(30_000) if e.type != GAP]
    assert len(frames) == broker.statistics().retained == 20_000
    assert retained_memory <= 2 * sum(len(frame) for frame in frames)


def _publish_to_topics(broker: Broker, topics: int, per_topic: int) -> None:
    for i in range(per_topic):
        for t in range(topics):
            broker.publish(Event("x", {"topic": t, "i": i}), topic=f"topic-{t}")


async def test_a_replay_of_everything_is_bounded_by_the_buffer() -> None:
    # `Last-Event-ID: 0-0` to every topic: the newest `max_pending` events, after a gap that
    # says the broker's history began later and one that counts what did not fit.
    broker = Broker(replay_events=100)
    _publish_to_topics(broker, 50, 100)
    live = broker.subscribe("live")
    broker.publish(Event("before"), topic="topic-0")
    [first] = await take(live, 1)
    replay = broker.subscribe("r", last_event_id="0-0", max_pending=64)
    events = await take(replay, 2 + 64)
    expired, overflow = events[:2]
    assert (expired.type, expired.data["reason"]) == (GAP, "expired")
    assert (overflow.type, overflow.data["reason"]) == (GAP, "overflow")
    assert overflow.data["missed"] == 50 * 100 - 64  # 100 per topic retained, "before" too
    kept = events[2:]
    assert kept[-1].id == first.id
    newest = [{"topic": t, "i": 98} for t in range(37, 50)] + [
        {"topic": t, "i": 99} for t in range(50)
    ]
    assert [e.data for e in kept[:-1]] == newest
    assert parse_id(overflow.data["last_id"]) < parse_id(kept[0].id or "")
    assert replay.statistics().dropped == overflow.data["missed"]
    broker.publish(Event("after"), topic="topic-1")
    assert [e.type for e in await take(replay, 1)] == ["after"]


async def test_a_replay_that_does_not_fit_under_disconnect_resumes_exactly() -> None:
    broker = Broker(replay_events=100)
    _publish_to_topics(broker, 20, 10)
    watcher = broker.subscribe("w", max_pending=1000)
    broker.publish(Event("end"), topic="topic-3")
    everything = await take(watcher, 1)
    seen: list[Event] = []
    last_id = "0-0"
    parts = 0
    resumed_at: list[bool] = []  # each overflow named the last event read
    with anyio.fail_after(10):
        while not seen or seen[-1].type != "end":
            parts += 1
            part = broker.subscribe(
                f"r{parts}", last_event_id=last_id, max_pending=64, overflow="disconnect"
            )
            try:
                while not seen or seen[-1].type != "end":
                    seen.extend(e for e in await part.receive_batch() if e.type != GAP)
            except SubscriptionOverflow as overflow:
                last_id = overflow.last_event_id or ""
                resumed_at.append(last_id == seen[-1].id)
            finally:
                await part.aclose()
    assert parts == 4  # 201 events, 64 at a time
    assert resumed_at == [True, True, True]
    expected = [{"topic": t, "i": i} for i in range(10) for t in range(20)]
    assert [e.data for e in seen[:-1]] == expected
    assert seen[-1].id == everything[0].id


def test_publishers_on_other_threads_go_on_during_a_replay() -> None:
    # A replay takes the lock once per topic, never for the whole of it: a publisher on
    # another thread gets in between. (Before, 1,000 topics replayed under one lock hold.)
    broker = Broker(replay_events=100)
    _publish_to_topics(broker, 1_000, 20)
    stop = threading.Event()
    published = [0]

    def publish() -> None:
        while not stop.is_set():
            broker.publish(Event("concurrent"), topic="elsewhere")
            published[0] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible
    thread = threading.Thread(target=publish)
    thread.start()
    try:
        while published[0] < 10:
            time.sleep(0.001)
        at_start = published[0]
        subscription = broker.subscribe("r", last_event_id="0-0", max_pending=100_000)
        during = published[0] - at_start
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    replayed = [e for e in subscription._take(200_000) if e.type == "x"]
    assert len(replayed) == 20_000  # everything retained, in order, before the live events
    assert during >= 20, during


async def test_an_event_nobody_followed_replays_as_its_json_says() -> None:
    # Kept as its frame only (its data is decoded for followers); a resume decodes it then.
    broker = Broker()
    broker.publish(Event("first", {"n": 0}), "t")
    broker.publish(Event("kept", {"when": (1, 2), "nested": {"k": [None]}}), "t")
    async with broker.subscribe("late", ["t"], last_event_id="0-0") as sub:
        gap, first, kept = await take(sub, 3)
    assert gap.type == GAP  # "0-0" is older than this broker
    assert (first.type, first.data) == ("first", {"n": 0})
    assert (kept.type, kept.topic, kept.data) == ("kept", "t", {"when": [1, 2],
                                                                "nested": {"k": [None]}})
    assert parse_id(first.id) < parse_id(kept.id)
    await broker.aclose()


async def test_a_published_event_is_an_event_like_one_made_by_hand() -> None:
    # The broker makes it without `Event.__init__` (stamp): every field and cache is set.
    broker = Broker()
    async with broker.subscribe("reader", ["t"]) as sub:
        broker.publish(Event("kind", {"n": (1, 2)}), "t")
        [event] = await take(sub, 1)
    by_hand = Event("kind", {"n": [1, 2]}, event.id, "t")
    assert type(event) is Event
    assert repr(event) == repr(by_hand)
    assert event.json() == by_hand.json()
    assert event_frame(event) == event_frame(by_hand)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = None  # type: ignore[misc]
    await broker.aclose()

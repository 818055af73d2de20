"""What only the Redis broker does: sharing across brokers, lag gaps, outages, URLs.

The contract it shares with the in-process broker is in `test_broker_contract.py`.
"""

from __future__ import annotations

import logging
import time

import anyio
import pytest

import chronos.stream.redis
from chronos import config, graph
from chronos.errors import BrokerUnavailable, ConfigurationError
from chronos.graph import emit
from chronos.store.memory import MemoryStore
from chronos.stream import GAP, Broker, Event, broker_from_url
from chronos.stream._ids import parse_id
from chronos.stream.redis import RedisBroker
from tests.stream.reading import take
from tests.stream.redis_helpers import (
    REDIS_URL,
    delete_prefix,
    free_port,
    redis_brokers,
    redis_server,
    unique_prefix,
)

pytestmark = pytest.mark.anyio


async def written(broker: RedisBroker) -> None:
    """Wait until the writer has Redis's reply for everything published.

    Subscribers may see events before that reply reaches the writer; a Redis killed in
    between makes the writer send them again after the restart (at least once, as
    documented), which tests that count events must rule out.
    """
    with anyio.fail_after(10):
        while broker._outbox:  # noqa: ASYNC110  # state of another task, nothing to await
            await anyio.sleep(0.01)


async def test_an_event_published_on_one_broker_reaches_another() -> None:
    async with redis_brokers() as brokers:
        prefix = unique_prefix()
        a = RedisBroker(REDIS_URL, key_prefix=prefix)
        b = RedisBroker(REDIS_URL, key_prefix=prefix)
        brokers += [a, b]
        on_a = a.subscribe("client", ["session"])
        on_b = b.subscribe("client", ["session"])  # same id, different process: independent
        await anyio.sleep(0.05)  # let both start following
        for i in range(50):
            a.publish(Event("token", i), topic="session")
        seen_a, seen_b = await take(on_a, 50), await take(on_b, 50)
        assert [e.data for e in seen_b] == list(range(50))
        assert [e.id for e in seen_a] == [e.id for e in seen_b]  # ids mean the same everywhere
        # A client of B reconnects to A with its Last-Event-ID and gets exactly the rest.
        resumed = a.subscribe("again", ["session"], last_event_id=seen_b[19].id)
        assert [e.data for e in await take(resumed, 30)] == list(range(20, 50))


async def test_a_reader_behind_the_retention_gets_a_gap_with_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Behind the notices too (they are kept longer than this stream's five events, so a
    # reader reads on from them): it reads the topic's own stream and counts what is gone.
    monkeypatch.setattr(chronos.stream.redis, "NOTICES_KEPT", 5)
    async with redis_brokers() as brokers:
        broker = RedisBroker(REDIS_URL, key_prefix=unique_prefix(), replay_events=5)
        brokers.append(broker)
        subscription = broker.subscribe("s", ["a"], max_pending=1000)
        await anyio.sleep(0.05)
        for i in range(300):  # one pipeline: trimmed before the reader gets to it
            broker.publish(Event("x", i), topic="a")
        events: list[Event] = []
        with anyio.fail_after(10):
            while not events or events[-1].data != 299:
                events.extend(await subscription.receive_batch())
        gaps = [e for e in events if e.type == GAP]
        data = [e.data for e in events if e.type != GAP]
        assert gaps, "events were trimmed unread, yet no gap was reported"
        assert {g.data["reason"] for g in gaps} == {"expired"}
        assert sum(g.data["missed"] for g in gaps) + len(data) == 300
        assert data == sorted(data)


async def test_every_topic_includes_topics_born_in_other_processes() -> None:
    async with redis_brokers() as brokers:
        prefix = unique_prefix()
        a = RedisBroker(REDIS_URL, key_prefix=prefix)
        b = RedisBroker(REDIS_URL, key_prefix=prefix)
        brokers += [a, b]
        a.publish(Event("x", -1), topic="older")
        probe = b.subscribe("probe", ["older"], last_event_id="0-0")
        await take(probe, 1)  # written: "older" exists before the subscriptions below
        early = b.subscribe("early")
        named = b.subscribe("named", ["older"])
        await anyio.sleep(0.05)
        for i in range(60):  # one topic more every ten events, each born on A
            a.publish(Event("x", i), topic=f"born-{i // 10}" if i % 2 else "older")
        got: list[Event] = []
        with anyio.fail_after(20):
            while len(got) < 60:
                got.extend(e for e in await early.receive_batch() if e.data != -1)
        assert sorted(e.data for e in got) == list(range(60))  # each once
        for topic in {e.topic for e in got}:
            mine = [e.data for e in got if e.topic == topic]
            assert mine == sorted(mine)
        # Joining later, with many topics alive, and resuming across them is exact too.
        in_order = sorted(got, key=lambda e: parse_id(e.id or ""))
        late = b.subscribe("late", last_event_id=in_order[9].id)
        assert sorted(e.data for e in await take(late, 50)) == list(range(10, 60))
        own: list[Event] = []
        with anyio.fail_after(10):
            while not own or own[-1].data != 58:
                own.extend(e for e in await named.receive_batch() if e.data != -1)
        assert [e.data for e in own] == list(range(0, 60, 2))


async def test_publishers_get_broker_unavailable_when_the_outbox_is_full() -> None:
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", max_outbox=3)  # nobody there
    try:
        for i in range(3):
            broker.publish(Event("x", i), topic="a")
        await anyio.sleep(0.1)  # the writer tries, fails, keeps them
        with pytest.raises(BrokerUnavailable):
            broker.publish(Event("x", 3), topic="a")
    finally:
        with anyio.fail_after(10):
            await broker.aclose()


async def test_redis_restart_mid_stream_is_recovered_with_a_gap() -> None:
    with redis_server() as server:
        prefix = unique_prefix()
        broker = RedisBroker(server.url, key_prefix=prefix, block_seconds=1.0)
        try:
            subscription = broker.subscribe("s", ["a"])
            await anyio.sleep(0.05)
            for i in range(10):
                broker.publish(Event("x", i), topic="a")
            before = await take(subscription, 10)
            await written(broker)
            server.kill()  # no persistence: the stream is gone with it
            for i in range(10, 15):  # queued in the outbox meanwhile
                broker.publish(Event("x", i), topic="a")
            await anyio.sleep(0.3)
            server.start()  # same port, empty
            after = await take(subscription, 6, seconds=20)
            assert after[0].type == GAP
            assert after[0].data["reason"] == "expired"
            assert after[0].id == before[-1].id
            assert [e.data for e in after[1:]] == list(range(10, 15))
            broker.publish(Event("x", 15), topic="a")
            assert [e.data for e in await take(subscription, 1)] == [15]
            assert not subscription.closed
        finally:
            with anyio.fail_after(15):
                await broker.aclose()


@pytest.mark.parametrize("published_after_restart", [0, 3])
async def test_a_resume_across_a_redis_restart_starts_with_a_gap(
    published_after_restart: int,
) -> None:
    # The client was away while Redis restarted without persistence: the events it missed
    # are gone, and the resume must say so before delivering anything new.
    with redis_server() as server:
        prefix = unique_prefix()
        broker = RedisBroker(server.url, key_prefix=prefix, block_seconds=1.0)
        try:
            subscription = broker.subscribe("s", ["a"])
            await anyio.sleep(0.05)
            for i in range(5):
                broker.publish(Event("x", i), topic="a")
            seen = await take(subscription, 5)
            await subscription.aclose()
            for i in range(5, 8):  # missed by the client, then lost with Redis
                broker.publish(Event("x", i), topic="a")
            await written(broker)
            server.kill()
            server.start()  # same port, empty
            for i in range(100, 100 + published_after_restart):
                broker.publish(Event("x", i), topic="a")
            await written(broker)
            resumed = broker.subscribe("s2", ["a"], last_event_id=seen[-1].id)
            await anyio.sleep(0.1)
            broker.publish(Event("x", 200), topic="a")
            events = await take(resumed, 2 + published_after_restart, seconds=20)
        finally:
            with anyio.fail_after(15):
                await broker.aclose()
    assert (events[0].type, events[0].data["reason"]) == (GAP, "expired")
    assert [e.data for e in events[1:]] == [*range(100, 100 + published_after_restart), 200]


async def test_a_resume_from_after_the_broker_reached_a_fresh_redis_needs_no_gap() -> None:
    # A position from this host's clock after the broker first reached Redis (a server's join
    # replays a run from just before its creation) is not from lost data, though it is older
    # than Redis's first id: on a fresh Redis (a new prefix: no clock yet) the first run must
    # be rejoined whole, not after an "expired" gap.
    async with redis_brokers() as brokers:
        broker = RedisBroker(REDIS_URL, key_prefix=unique_prefix())
        brokers.append(broker)
        broker.subscribe("control", ["elsewhere"])  # what a server does as it starts
        with anyio.fail_after(10):
            while not broker._reached:  # noqa: ASYNC110  # the writer's state, nothing to await
                await anyio.sleep(0.01)
        since = f"{time.time_ns() // 1_000_000}-0"
        await anyio.sleep(0.005)
        broker.publish(Event("x", 1), topic="a")
        await written(broker)
        joined = broker.subscribe("join", ["a"], last_event_id=since)
        broker.publish(Event("x", 2), topic="a")
        events = await take(joined, 2)
    assert [(e.type, e.data) for e in events] == [("x", 1), ("x", 2)]


def story_runner(broker: RedisBroker, tokens: int) -> graph.Runner:
    async def write(state: dict[str, object]) -> dict[str, object]:
        for i in range(tokens):
            emit("token", i)
        return {"text": "done"}

    story = graph.StateGraph("story")
    story.add_node("write", write).set_entry_point("write").set_finish_point("write")
    return graph.Runner(story.compile(), None, broker=broker)


async def test_a_run_while_redis_is_down_reaches_subscribers_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The runner's broker buffers the whole run in its outbox while Redis is away and writes
    # it, in order, once Redis is back; a subscriber in another "process" (broker) gets it.
    caplog.set_level(logging.INFO, logger="chronos.stream")
    with redis_server() as server:
        prefix = unique_prefix()
        publisher = RedisBroker(server.url, key_prefix=prefix, block_seconds=1.0)
        watcher = RedisBroker(server.url, key_prefix=prefix, block_seconds=1.0)
        try:
            subscription = watcher.subscribe("ui", ["session-1"], max_pending=10_000)
            await anyio.sleep(0.05)
            publisher.publish(Event("hello"), topic="session-1")
            [hello] = await take(subscription, 1)
            await written(publisher)
            server.kill()  # no persistence: `hello` is gone with it
            result = await story_runner(publisher, 200).run("session-1", {})
            assert result.status == "completed"  # the run never noticed
            await anyio.sleep(0.3)
            server.start()
            events = await take(subscription, 1)
            with anyio.fail_after(20):
                while events[-1].type != "completed":
                    events.extend(await subscription.receive_batch())
        finally:
            with anyio.fail_after(15):
                await publisher.aclose()
                await watcher.aclose()
    # Redis lost what it held, and says so; everything the run published arrives after it.
    assert (events[0].type, events[0].data["reason"], events[0].id) == (GAP, "expired", hello.id)
    run = events[1:]
    assert [e.data["seq"] for e in run] == list(range(1, len(run) + 1))
    assert [e.data["data"] for e in run if e.type == "token"] == list(range(200))
    # The outage is logged as it starts and as it ends, once by each reader and writer that
    # saw it, with the error's type and never the URL. (Both brokers read; the publisher's
    # reader may be closed before it reconnects: the watcher's reader and the publisher's
    # writer must have, to deliver the run.)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "chronos.stream"]
    lost = [m for level, m in said if level == "WARNING"]
    back = [m.removesuffix(" reached Redis again") for level, m in said if level == "INFO"]
    assert all("error=ConnectionError" in m and server.url not in m for m in lost)
    sides = {"redis broker reader", "redis broker writer"}
    assert {m.split(" lost Redis")[0] for m in lost} == set(back) == sides


async def test_a_run_that_outgrows_the_outbox_fails_with_broker_unavailable() -> None:
    # Beyond `max_outbox` events are not dropped quietly: the run fails, saying why.
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", max_outbox=50)  # nobody there
    try:
        with pytest.raises(BrokerUnavailable, match="50 events are waiting"):
            await story_runner(broker, 100).run("session-1", {})
    finally:
        with anyio.fail_after(10):
            await broker.aclose()


def test_broker_from_url() -> None:
    assert isinstance(broker_from_url("memory://"), Broker)
    broker = broker_from_url("redis://127.0.0.1:6379/0", key_prefix="x:", max_pending=7)
    assert isinstance(broker, RedisBroker)
    assert (broker.key_prefix, broker.max_pending) == ("x:", 7)
    with pytest.raises(ConfigurationError):
        broker_from_url("kafka://somewhere")
    with pytest.raises(ConfigurationError):
        broker_from_url("127.0.0.1:6379")


def test_broker_from_url_takes_the_limits_and_redis_options_from_the_query() -> None:
    memory = broker_from_url("memory://?replay_events=16&max_pending=8")
    assert isinstance(memory, Broker)
    assert (memory.replay_events, memory.max_pending) == (16, 8)
    redis = broker_from_url(REDIS_URL + "?socket_connect_timeout=2&replay_seconds=9")
    assert isinstance(redis, RedisBroker)
    assert redis.replay_seconds == 9.0
    assert redis.url == REDIS_URL + "?socket_connect_timeout=2"  # redis-py's, left to it


@pytest.mark.parametrize(("url", "refusal"), [
    ("memory://?size=3", "option 'size'"),
    ("memory://?max_pending=lots", "max_pending='lots' is invalid"),
    ("redis://:hunter2@127.0.0.1:6379/0?nonsense=1", "option 'nonsense'"),
    ("kafka://:hunter2@somewhere", "unknown broker URL"),
])
def test_broker_from_url_refuses_what_the_broker_does_not_understand(
    url: str, refusal: str
) -> None:
    with pytest.raises(ConfigurationError, match=refusal) as caught:
        broker_from_url(url)
    assert "hunter2" not in str(caught.value)


def test_one_configuration_entry_point_from_the_environment() -> None:
    setup = config.from_env({config.STORE_URL_ENV: "memory://"})
    assert isinstance(setup.broker, Broker)  # unset: the embedded default
    setup = config.from_env(
        {config.BROKER_URL_ENV: "redis://127.0.0.1:6379/1", config.STORE_URL_ENV: "memory://"}
    )
    assert isinstance(setup.broker, RedisBroker)
    assert isinstance(setup.store, MemoryStore)
    with pytest.raises(ConfigurationError):
        config.from_env({config.BROKER_URL_ENV: "nope://"})


async def test_keys_are_cleaned_up_by_prefix() -> None:
    # The helpers every Redis test relies on really delete what a test wrote.
    async with redis_brokers() as brokers:
        prefix = unique_prefix()
        brokers.append(RedisBroker(REDIS_URL, key_prefix=prefix))
        subscription = brokers[0].subscribe("s", ["a"])
        brokers[0].publish(Event("x"), topic="a")
        await take(subscription, 1)
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert [k async for k in client.scan_iter(match=f"{prefix}*")] == []
    finally:
        await client.aclose()
        await delete_prefix(prefix)

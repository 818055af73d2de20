"""Topic isolation behind the SSE handler's `authorize` hook, under a real uvicorn.

Alice is granted `alice-1` and `alice-2`; Bob `bob-1`; nobody `admin`. Events carrying a
`SECRET` marker go to Bob's and the admin topic before every attempt (so a replay could leak
them) and again once each attempt's response has started (so live delivery could). Alice then
tries to read them with forged topics (path, query, duplicates, encodings, lookalikes),
forged subscription ids, and forged `Last-Event-ID`s (other topics' ids, huge, negative,
garbage, in the header and the query). Requests go out byte for byte over a raw socket, so
nothing is normalised on the way. Every answer must be 400/401/403/404/405 or a stream of
Alice's own events only (and it must carry the marker event published to her afterwards, so
the stream was live); the raw response bytes never contain `SECRET`. Bob, connected
throughout, does get his secrets: the test would see a leak if there were one.

Run against the in-process `Broker` and the `RedisBroker` (real Redis on 127.0.0.1:6379).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.abc
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from chronos.stream import GAP, Broker, BrokerProtocol, Event
from chronos.stream.redis import RedisBroker
from tests.stream.conftest import serve
from tests.stream.reading import take
from tests.stream.redis_helpers import REDIS_URL, delete_prefix, require_redis, unique_prefix

pytestmark = pytest.mark.anyio

GRANTS = {"alice": frozenset({"alice-1", "alice-2"}), "bob": frozenset({"bob-1"})}
ALICE = [("Authorization", "Bearer alice")]
REFUSED = {400, 401, 403, 404, 405}
REDIRECTED = {307}  # Starlette's trailing-slash redirect, to a target also tried directly


def authorize(request: Request, topics: frozenset[str] | None) -> bool:
    user = request.headers.get("authorization", "").removeprefix("Bearer ")
    if user not in GRANTS:
        raise HTTPException(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
    return bool(topics) and topics is not None and topics <= GRANTS[user]


def app_for(broker: BrokerProtocol) -> Starlette:
    handler = broker.sse_handler(authorize=authorize, heartbeat=0.5)
    return Starlette(routes=[
        Route("/events", handler),
        Route("/sessions/{topic}/events", handler),
    ])


# --- a raw HTTP/1.1 client --------------------------------------------------------------------


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body, as far as it arrived."""
    out = bytearray()
    while body:
        line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return bytes(out)


def sse_messages(payload: bytes) -> list[dict[str, Any]]:
    messages = []
    for block in payload.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            messages.append(json.loads(b"\n".join(data)))
    return messages


def _complete(raw: bytes, *, head_only: bool) -> bool:
    """Whether a whole response has arrived (the connection stays open after one)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head_only or head.startswith((b"HTTP/1.1 204", b"HTTP/1.1 304")):
        return True
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return body.endswith(b"0\r\n\r\n")


class Answer:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, body = raw.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        chunked = b"transfer-encoding: chunked" in head.lower()
        self.messages = sse_messages(dechunk(body) if chunked else body) if (
            self.status == 200) else []


async def request_raw(
    url: str, target: str, headers: list[tuple[str, str]], *, method: str = "GET",
    until: bytes = b"", on_start: Callable[[], Any] | None = None, seconds: float = 5.0,
) -> Answer:
    """Send the request exactly as given; read until `until` appears, the end, or `seconds`.

    `on_start` runs once the status line has arrived (to publish while the stream is open).
    """
    parts = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers]
    raw = b""
    started = False
    assert parts.hostname is not None
    assert parts.port is not None
    async with await anyio.connect_tcp(parts.hostname, parts.port) as sock:
        await sock.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        with anyio.move_on_after(seconds):
            while True:
                try:
                    raw += await sock.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
                if not started and b"\r\n" in raw:
                    started = True
                    if on_start is not None and raw.startswith(b"HTTP/1.1 200"):
                        await on_start()
                if (until and until in raw) or _complete(raw, head_only=method == "HEAD"):
                    break
    return Answer(raw)


# --- the attacks ------------------------------------------------------------------------------


def topic_attacks() -> list[tuple[str, list[tuple[str, str]]]]:
    """(request target, extra headers): Alice reaching for topics she was not granted."""
    q = quote
    targets = [
        "/sessions/bob-1/events",
        "/sessions/admin/events",
        "/sessions/bob%2D1/events",                       # percent-encoded letters
        "/sessions/BOB-1/events",
        "/sessions/bob-1%2F..%2Falice-1/events",           # encoded separators
        "/sessions/alice-1/../bob-1/events",               # dot segments, raw
        "/sessions/alice-1%2F..%2F..%2Fsessions%2Fbob-1/events",
        "/sessions/%62ob-1/events",
        "/sessions/bob-1%00/events",
        "/sessions/alice-1/events/../../bob-1/events",
        "/sessions//bob-1/events",
        "/sessions/bob-1/events/",
        "/sessions/bob-1/events?topic=alice-1",            # path wins over the query
        "/sessions/alice-1/events?topic=bob-1",            # the query is ignored here: only alice-1
        "/events",                                         # no topic: every topic
        "/events?topic=",                                  # empty: every topic
        "/events?topic=bob-1",
        "/events?topic=alice-1&topic=bob-1",               # duplicate parameters
        "/events?topic=bob-1&topic=alice-1",
        "/events?topic=alice-1&topic=alice-2&topic=admin",
        "/events?topic=alice-1%26topic%3Dbob-1",            # an encoded separator
        "/events?topic=alice-1;topic=bob-1",
        "/events?topic=alice-1%00bob-1",
        "/events?topic=bob%2D1",
        "/events?topic=bob-1%20",
        "/events?topic=+bob-1",
        "/events?topic=" + q("b\u043eb-1"),                      # Cyrillic o
        f"/events?topic={q('alice-1')}&TOPIC=bob-1&Topic=bob-1&topics=bob-1",
        "/events?topic[]=bob-1&topic=alice-1",
        "/events?topic=alice-1&topic=%E2%80%AEbob-1",
        "/events?topic=*", "/events?topic=%2A", "/events?topic=bob-*",
        "/events?topic=..%2Fbob-1",
        "/events?topic=chronos%3Astream%3Abob-1",           # a Redis key, prefix and all
        "/events?topic=_clock", "/events?topic=bob-1%00count",
        "/events?topic=" + "a" * 5000,
        "/events?" + "&".join(["topic=alice-1"] * 200 + ["topic=bob-1"]),
    ]
    attacks: list[tuple[str, list[tuple[str, str]]]] = [(t, ALICE) for t in targets]
    # No credentials, or someone else's scheme.
    attacks += [("/sessions/bob-1/events", []), ("/sessions/alice-1/events", []),
                ("/sessions/bob-1/events", [("Authorization", "Basic Ym9iOg==")]),
                ("/sessions/bob-1/events", [("Authorization", "Bearer ")]),
                ("/sessions/bob-1/events", [("Authorization", "Bearer alice bob")])]
    # Forged subscription ids: the handler picks its own; parameters naming one are ignored.
    for forged in ("sse-1", "sse-2", "sse-3", "bob", "client-123"):
        attacks.append((f"/sessions/alice-1/events?subscription_id={forged}&id={forged}",
                        [*ALICE, ("X-Subscription-Id", forged)]))
    return attacks


def last_event_id_attacks(bob_ids: list[str], admin_ids: list[str]) -> list[str]:
    """Last-Event-IDs for a stream of alice-1: other topics' ids and everything malformed."""
    first = bob_ids[0]
    ms = int(first.split("-")[0])
    forged = [
        *bob_ids[:3], bob_ids[-1], *admin_ids[:2], "0-0", "0", "1-0",
        f"{ms - 1}-0", f"{ms}-0", f"{ms + 10**6}-0",
        "18446744073709551615-18446744073709551615", "18446744073709551616-0",
        "99999999999999999999-99999999999999999999", "9" * 40 + "-0", "-1-0", "-1", "1--1",
        "0x10-0", "1e3-0", "1.5-0", " 1-0", "1-0 ", "1 -0", "1-0,2-0", "1-0-0", "",
        "abc", "null", "undefined", "%31-0", "\uff11-\uff10", "\t1-0", "1-0\x00",
        "' OR 1=1 --", "bob-1", "alice-1", "a" * 10_000,
    ]
    return forged


@contextlib.asynccontextmanager
async def brokers(kind: str) -> AsyncIterator[tuple[BrokerProtocol, BrokerProtocol]]:
    """(the app's broker, the test's broker): one broker, or two sharing a Redis prefix."""
    if kind == "memory":
        async with Broker() as broker:
            yield broker, broker
        return
    require_redis()
    prefix = unique_prefix()
    app_broker = RedisBroker(REDIS_URL, key_prefix=prefix, block_seconds=1.0)
    test_broker = RedisBroker(REDIS_URL, key_prefix=prefix, block_seconds=1.0)
    try:
        async with test_broker:
            yield app_broker, test_broker  # the app's broker is closed on uvicorn's loop
    finally:
        await delete_prefix(prefix)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_alice_reads_no_topic_she_was_not_granted(kind: str) -> None:
    markers = itertools.count()
    secrets = itertools.count()
    async with brokers(kind) as (app_broker, broker), serve(
        app_for(app_broker), before_shutdown=app_broker.aclose
    ) as server:
        # Bob, legitimately connected all along, sees every secret of his topic.
        bob_seen: list[bytes] = []

        async def bob() -> None:
            async def connected() -> None:
                bob_connected.set()

            answer = await request_raw(server.url, "/sessions/bob-1/events",
                                       [("Authorization", "Bearer bob")], until=b"bob-done",
                                       on_start=connected, seconds=240)
            bob_seen.append(answer.raw)

        bob_connected = anyio.Event()
        spy = broker.subscribe("spy", ["bob-1", "admin"])
        bob_ids: list[str] = []
        admin_ids: list[str] = []

        def publish_secrets() -> None:
            for topic in ("bob-1", "admin"):
                n = next(secrets)
                broker.publish(Event("secret", {"secret": f"SECRET-{topic}-{n}"}), topic=topic)

        async def collect_ids(count: int) -> None:
            with anyio.fail_after(20):
                while len(bob_ids) + len(admin_ids) < count:
                    for event in await spy.receive_batch():
                        (bob_ids if event.topic == "bob-1" else admin_ids).append(str(event.id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(bob)
            with anyio.fail_after(10):
                await bob_connected.wait()
            for _ in range(5):
                publish_secrets()
            await collect_ids(10)

            attempts = 0
            answers: list[tuple[str, Answer]] = []

            async def attempt(target: str, headers: list[tuple[str, str]],
                              method: str = "GET") -> None:
                nonlocal attempts
                attempts += 1
                publish_secrets()  # retained: a replay could leak these
                marker = f"marker-{next(markers)}"

                async def during() -> None:
                    publish_secrets()  # live: a subscription could leak these
                    for topic in GRANTS["alice"]:
                        broker.publish(Event("mine", marker), topic=topic)

                answer = await request_raw(server.url, target, headers, method=method,
                                           until=marker.encode(), on_start=during)
                answers.append((f"{method} {target} {headers}", answer))
                where = f"{method} {target} {headers}: HTTP {answer.status}"
                assert b"SECRET" not in answer.raw, f"leak: {where}"
                assert answer.status in REFUSED | REDIRECTED | {200, 204}, where
                for message in answer.messages:
                    assert message.get("topic") in GRANTS["alice"] | {None}, where
                if answer.status == 200 and method == "GET":
                    assert any(m.get("data") == marker for m in answer.messages), (
                        f"the stream was not live: {where}")

            for target, headers in topic_attacks():
                await attempt(target, headers)
            # The ids of the subscriptions open right now, Bob's among them: naming one
            # neither joins nor replaces it (Bob's count of secrets below would fall short).
            for open_id in list(app_broker._subscriptions):  # type: ignore[attr-defined]
                await attempt(f"/sessions/bob-1/events?subscription_id={open_id}",
                              [*ALICE, ("X-Subscription-Id", open_id)])
                await attempt(f"/sessions/alice-1/events?subscription_id={open_id}&id={open_id}",
                              [*ALICE, ("X-Subscription-Id", open_id)])
            for method in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
                await attempt("/sessions/bob-1/events", ALICE, method)
            for value in last_event_id_attacks(bob_ids, admin_ids):
                header = [("Last-Event-ID", value)] if "\x00" not in value else []
                await attempt("/sessions/alice-1/events", [*ALICE, *header])
                await attempt(f"/events?topic=alice-1&topic=alice-2&last_event_id={quote(value)}",
                              ALICE)
                await attempt(f"/sessions/alice-1/events?lastEventId={quote(value)}"
                              f"&last_event_id={quote(value)}", ALICE)
            # Duplicate Last-Event-ID headers: a valid own id and one of Bob's.
            await attempt("/sessions/alice-1/events",
                          [*ALICE, ("Last-Event-ID", bob_ids[0]), ("Last-Event-ID", "0-0")])
            await attempt("/sessions/alice-1/events",
                          [*ALICE, ("Last-Event-ID", "0-0"), ("Last-Event-ID", bob_ids[0])])

            broker.publish(Event("done", "bob-done"), topic="bob-1")
        await spy.aclose()

    streams = [a for _, a in answers if a.status == 200]
    refused = [a for _, a in answers if a.status in REFUSED]
    assert attempts == len(answers) > 150
    assert streams, "no stream of her own was exercised"
    assert refused, "no refusal was exercised"
    own = sum(len([m for m in a.messages if m.get("type") == "mine"]) for a in streams)
    assert own >= len(streams)
    # Bob got his secrets (published while he was connected): a leak would have been seen.
    bob_secrets = b"".join(bob_seen).count(b"SECRET-bob-1")
    assert bob_secrets >= attempts
    print(f"{kind}: {attempts} attempts, {len(streams)} streams of her own events "
          f"({own} events), {len(refused)} refused, Bob saw {bob_secrets} of his secrets")


@pytest.mark.parametrize("kind", ["memory", "redis"])
@pytest.mark.parametrize("forged", ["max", "an-hour-ahead", "max-before-any-event"])
async def test_a_forged_last_event_id_silences_no_other_subscriber(kind: str, forged: str) -> None:
    # Two readers of one topic in one process; the second resumes after an id from the
    # future. The first must keep receiving, and so must the second, from now on.
    # "max-before-any-event": nothing was ever published (Redis has issued no id yet).
    last_event_id = "18446744073709551615-18446744073709551615"
    async with brokers(kind) as (_, broker):
        first = broker.subscribe("first", ["shared"])
        await anyio.sleep(0.05)
        if forged != "max-before-any-event":
            broker.publish(Event("x", "before"), topic="shared")
            seen = await take(first, 1)
            if forged == "an-hour-ahead":
                ms = int(str(seen[0].id).split("-")[0])
                last_event_id = f"{ms + 3_600_000}-0"
        second = broker.subscribe("second", ["shared"], last_event_id=last_event_id)
        await anyio.sleep(0.2)  # let the second be admitted
        for i in range(3):
            broker.publish(Event("x", i), topic="shared")
        assert [e.data for e in await take(first, 3)] == [0, 1, 2]
        got: list[Event] = []
        while not got or got[-1].data != 2:  # a gap first; on Redis maybe "before" too
            got.extend(e for e in await take(second, 1) if e.type != GAP)
        assert [e.data for e in got][-3:] == [0, 1, 2]
        await first.aclose()
        await second.aclose()



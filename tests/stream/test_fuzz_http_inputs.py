"""Fuzzing what a client controls: `Last-Event-ID`, topics and the query string.

`parse_id` is fed any text; the SSE handler is fed any query string (raw bytes), any
`Last-Event-ID` header, any path topic and method, straight through ASGI (so that bytes no
HTTP server would pass on still reach it) and, with printable values, through uvicorn. Only
`InvalidLastEventID` may come out of the parser; the handler answers every request with a
status (200 with a stream, or 400/403/405), never an exception, and never hangs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from chronos.errors import InvalidLastEventID
from chronos.stream import Broker, Event
from chronos.stream._asgi import SSEHandler
from chronos.stream._ids import format_id, parse_id
from tests.fuzzing import FUZZ, hang_guard
from tests.stream.conftest import Server

_ID_PARTS = st.sampled_from(["0", "1", "-", " ", "00", "18446744073709551615",
                             "18446744073709551616", "99999999999999999999", "\u0661",
                             "\uff11", "\u00b2", "+", "\t", "\n", "\0", "e", "_", "1_0"])
id_text = st.lists(_ID_PARTS | st.text(max_size=3), max_size=8).map("".join)


@FUZZ
@given(value=id_text)
@example(value="\u0661-\u0660")  # Arabic-Indic digits: `\d` matches them, `int()` takes them
@example(value="1_0-0")  # int() would accept the underscore
def test_parse_id_accepts_exactly_the_ids_a_broker_formats(value: str) -> None:
    try:
        position = parse_id(value)
    except InvalidLastEventID:
        return
    ms, seq = position
    assert 0 <= ms < 2**64
    assert 0 <= seq < 2**64
    # Only ASCII digits, a dash and surrounding spaces: what `format_id` writes.
    parts = value.strip(" ").split("-")
    assert all(part.isascii() and part.isdigit() for part in parts)
    assert [int(part) for part in parts] == [ms, seq]
    assert parse_id(format_id(position)) == position


# --- the handler, through ASGI --------------------------------------------------------------


def _granted(request: Request, topics: frozenset[str] | None) -> bool:
    return topics is not None and topics <= {"granted", "default"}


async def _call(handler: SSEHandler, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """One request; the client leaves as soon as the stream has started."""
    sent: list[dict[str, Any]] = []
    started = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("more_body"):
            started.set()

    with anyio.fail_after(5):
        await handler(scope, receive, send)
    return sent


_QUERY_PARTS = st.sampled_from([b"topic=", b"topic=granted", b"topic=other", b"&", b"=", b";",
                                b"last_event_id=", b"lastEventId=", b"1-0", b"%", b"%00",
                                b"%ff", b"%D9%A1-0", b"+", b"\xff", b"\x00", b"#", b"?"])
_HEADER_VALUE = st.binary(max_size=40) | id_text.map(lambda s: s.encode("utf-8"))


@pytest.mark.parametrize("guarded", [False, True], ids=["open", "authorize"])
def test_the_handler_answers_any_request_with_a_status(guarded: bool) -> None:
    broker = Broker()
    broker.publish(Event("t", 1), "granted")
    handlers = [SSEHandler(broker, authorize=_granted if guarded else None, heartbeat=5),
                SSEHandler(broker, "fixed-id", heartbeat=5, cors_origins=["*"])]

    @FUZZ.with_examples(150)
    @given(query=st.lists(_QUERY_PARTS | st.binary(max_size=6), max_size=10).map(b"".join),
           last_event_id=st.none() | _HEADER_VALUE,
           topic=st.none() | st.text(max_size=8),
           method=st.sampled_from(["GET", "GET", "HEAD", "POST", "OPTIONS"]),
           origin=st.none() | _HEADER_VALUE,
           which=st.integers(0, 1))
    def fuzz(query: bytes, last_event_id: bytes | None, topic: str | None, method: str,
             origin: bytes | None, which: int) -> None:
        headers = [(b"host", b"test")]
        if last_event_id is not None:
            headers.append((b"last-event-id", last_event_id))
        if origin is not None:
            headers.append((b"origin", origin))
        scope = {"type": "http", "method": method, "path": "/events", "query_string": query,
                 "headers": headers, "path_params": {"topic": topic} if topic else {}}
        with hang_guard(10):
            sent = anyio.run(_call, handlers[which], scope)
        start = sent[0]
        assert start["type"] == "http.response.start"
        assert start["status"] in (200, 204, 400, 403, 405)
        if start["status"] == 200 and guarded and which == 0:
            assert topic or b"topic=" in query  # a stream of every topic was never granted
        assert broker.statistics().subscriptions == 0  # every connection cleaned up

    fuzz()


# --- the handler, through uvicorn -----------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Any:
    broker = Broker()
    app = Starlette(routes=[Route("/events", SSEHandler(broker, heartbeat=5)),
                            Route("/t/{topic}/events", SSEHandler(broker, heartbeat=5))])
    server = Server(app)
    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def test_printable_inputs_over_http_get_a_status(served: Any) -> None:
    client = served

    @FUZZ.with_examples(60)
    @given(value=id_text, topic=st.text(min_size=1, max_size=8),
           param=st.sampled_from(["header", "last_event_id", "lastEventId"]))
    def fuzz(value: str, topic: str, param: str) -> None:
        headers: dict[str, bytes] = {}
        params = {"topic": topic}
        if param == "header":
            raw = value.encode("utf-8")
            if any(b < 0x20 or b == 0x7F for b in raw) or raw != raw.strip():
                return  # not a value an HTTP client can send
            headers["last-event-id"] = raw
        else:
            params[param] = value
        for url in ("/events", f"/t/{quote(topic, safe='')}/events"):
            with client.stream("GET", url, params=params, headers=headers) as response:
                assert response.status_code in (200, 400, 404), response.status_code
                if response.status_code == 200:
                    assert next(response.iter_bytes())  # the preamble

    fuzz()


# --- topics on the Redis broker -------------------------------------------------------------

@pytest.mark.parametrize("topic", [
    "\0new", "*", "{slot}", "a:b", "", "\0", "é\U0001f916", "x" * 1000,
    # Names of the broker's own keys, old and new: topics' keys can no longer be any of them.
    "session\0count", "\0topics", "_clock", "_topics", "_new", "c:session", "t:session",
])
def test_a_topic_from_a_client_cannot_stop_a_redis_broker(topic: str) -> None:
    """What `?topic=` passes to `subscribe` as is, on the broker that serves many clients."""
    from chronos.stream.redis import RedisBroker
    from tests.stream.redis_helpers import REDIS_URL, redis_brokers, unique_prefix

    async def main() -> None:
        async with redis_brokers() as brokers:
            broker = RedisBroker(REDIS_URL, key_prefix=unique_prefix())
            brokers.append(broker)
            healthy = broker.subscribe("healthy", ["session"])
            for i, join in enumerate([False, True]):
                if join:  # once the broker is following "session"
                    broker.subscribe("client", [topic], last_event_id="0-0")
                    await anyio.sleep(0.2)
                broker.publish(Event("t", i), topic="session")
                with anyio.fail_after(3):
                    batch = await healthy.receive_batch()
                assert [e.data for e in batch] == [i]

    anyio.run(main)

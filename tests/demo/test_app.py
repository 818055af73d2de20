"""The demo app over real HTTP (uvicorn on loopback): start, stream, review, resume, replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from chronos.demo import create_app
from chronos.model.openai import OpenAIProvider
from chronos.store import MemoryStore
from tests.demo.conftest import (
    WORDS,
    drafts,
    model_saying,
    openai_stream,
    read_events,
    running,
    streamed_text,
)
from tests.model.replay import ReplayServer, Reply
from tests.stream.test_sse_http import wait_until

pytestmark = pytest.mark.anyio


async def test_a_run_streams_pauses_at_review_and_completes_when_approved(
    replay_server: ReplayServer,
) -> None:
    app = create_app(model_saying(replay_server, *drafts(WORDS)))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "<title>chronos demo</title>" in page.text
        layout = (await client.get("/graph")).json()
        assert [n["id"] for n in layout["nodes"]][1:-1] == ["classify", "draft", "review",
                                                            "finalize"]

        started = await client.post("/runs", json={"prompt": "Tell me a story"})
        assert started.status_code == 201
        session = started.json()["session_id"]
        assert started.json() == {"session_id": session, "prompt": "Tell me a story",
                                  "status": "running"}

        before = await read_events(client, session, until={"interrupt"})
        assert [e["data"]["node_id"] for e in before if e["type"] == "node_start"] == [
            "classify", "draft"
        ]
        assert {e["topic"] for e in before} == {session}
        assert streamed_text(before) == "".join(WORDS)
        assert [e["data"]["node_id"] for e in before if e["type"] == "token"] == ["draft"] * 24
        assert before[-1]["data"]["node_id"] == "review"
        assert (await client.get(f"/runs/{session}")).json()["status"] == "paused"

        resumed = await client.post(f"/runs/{session}/resume", json={"approved": True})
        assert resumed.status_code == 202
        after = await read_events(client, session, last_event_id=before[-1]["id"])
        assert [e["data"]["node_id"] for e in after if e["type"] == "node_start"] == [
            "review", "finalize"
        ]
        final = after[-1]
        assert final["type"] == "completed"
        assert final["data"]["state"]["status"] == "approved"
        assert final["data"]["state"]["answer"] == "".join(WORDS)
        assert (await client.get(f"/runs/{session}")).json()["status"] == "completed"
        again = await client.post(f"/runs/{session}/resume", json={"approved": True})
        assert again.status_code == 409
        assert again.json()["error"] == "the run is completed, not waiting for a review"


async def test_a_rejection_brings_a_second_draft(replay_server: ReplayServer) -> None:
    app = create_app(model_saying(replay_server, *drafts(["One."], ["Two."])))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        session = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        first = await read_events(client, session, until={"interrupt"})
        await client.post(f"/runs/{session}/resume", json={"approved": False})
        second = await read_events(client, session, until={"interrupt"},
                                   last_event_id=first[-1]["id"])
        assert streamed_text(second) == "Two."
        await client.post(f"/runs/{session}/resume", json={"approved": False})
        last = await read_events(client, session, last_event_id=second[-1]["id"])
        assert last[-1]["data"]["state"]["status"] == "rejected"


async def test_every_reader_gets_the_session_from_its_start_or_after_its_last_id(
    replay_server: ReplayServer,
) -> None:
    app = create_app(model_saying(replay_server, *drafts(WORDS)))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        session = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        live = await read_events(client, session, until={"interrupt"})
        await client.post(f"/runs/{session}/resume", json={"approved": True})
        live += await read_events(client, session, last_event_id=live[-1]["id"])

        late = await read_events(client, session)  # a tab opened after the run
        assert [e["id"] for e in late] == [e["id"] for e in live]
        assert len({e["id"] for e in live}) == len(live)
        for cut in (1, 10, len(live) - 2):
            rest = await read_events(client, session, last_event_id=live[cut]["id"])
            assert rest == live[cut + 1 :]
        # For clients that cannot set headers:
        by_query = await read_events(client, session, last_event_id=live[5]["id"], in_query=True)
        assert by_query == live[6:]


async def test_a_model_failure_ends_the_run_with_an_error_event(
    replay_server: ReplayServer,
) -> None:
    refusal = Reply(status=400, body=b'{"error": {"message": "no such model"}}',
                    headers={"content-type": "application/json"})
    app = create_app(model_saying(replay_server, refusal))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        session = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        events = await read_events(client, session)
        assert events[-1]["type"] == "error"
        assert events[-1]["data"]["node_id"] == "draft"
        assert "no such model" in events[-1]["data"]["error"]
        assert (await client.get(f"/runs/{session}")).json()["status"] == "failed"
        refused = await client.post(f"/runs/{session}/resume", json={"approved": True})
        assert refused.status_code == 409


async def test_requests_that_cannot_be_served_get_clear_errors(
    replay_server: ReplayServer,
) -> None:
    stalled = Reply(body=b"", end="stall")  # the model never answers: the run stays running
    app = create_app(model_saying(replay_server, stalled))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        for body in ({}, {"prompt": "  "}, {"prompt": 3}, [1]):
            refused = await client.post("/runs", json=body)
            assert refused.status_code == 400
            assert "prompt" in refused.json()["error"]
        assert (await client.post("/runs", content=b"{not json")).status_code == 400
        assert (await client.post("/runs", json={"prompt": "x" * 5000})).status_code == 400

        for unknown in (client.get("/runs/nope"), client.get("/runs/nope/events"),
                        client.post("/runs/nope/resume", json={"approved": True})):
            missing = await unknown
            assert missing.status_code == 404
            assert missing.json() == {"error": "unknown session"}

        session = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        busy = await client.post(f"/runs/{session}/resume", json={"approved": True})
        assert busy.status_code == 409
        assert busy.json()["error"] == "the run is running, not waiting for a review"
        wrong = await client.post(f"/runs/{session}/resume", json={"approved": "yes"})
        assert wrong.status_code == 400



async def test_shutdown_cancels_the_run_in_flight_and_ends_its_streams(
    replay_server: ReplayServer,
) -> None:
    # The model says one word, then nothing: the run is mid-draft when the server stops.
    opening = b"".join(part + b"\n\n" for part in openai_stream(["Once "]).split(b"\n\n")[:2])
    script = replay_server.script(Reply(body=opening, end="stall"))
    provider = OpenAIProvider("scripted", base_url=script.base_url + "/v1", api_key="test")
    app = create_app(provider)
    followed: list[dict[str, Any]] = []

    async def follow(client: httpx.AsyncClient, session: str) -> None:
        followed.extend(await read_events(client, session, until={"never"}))

    async with anyio.create_task_group() as group:
        async with running(app) as server:
            client = httpx.AsyncClient(base_url=server.url)
            session = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
            first = await read_events(client, session, until={"token"})
            assert streamed_text(first) == "Once "
            # The first reader's subscription ends with its connection: counted, it would
            # stand for the follower's below, and the server could stop before it connects.
            await wait_until(lambda: app.broker.statistics().subscriptions == 0, 30)
            group.start_soon(follow, client, session)  # open while the server stops
            await wait_until(lambda: app.broker.statistics().subscriptions == 1, 30)
        # The server has stopped: the model's request was abandoned, the stream ended.
        assert await anyio.to_thread.run_sync(script.exchanges[0].client_left.wait, 10)
    await client.aclose()
    assert followed[-1]["type"] == "cancelled"
    assert followed[-1]["data"]["node_id"] == "draft"
    await provider.aclose()


async def test_sessions_are_forgotten_once_their_events_have_left_the_replay(
    replay_server: ReplayServer,
) -> None:
    # The session table stays bounded: a finished session goes when a later run starts
    # after the replay window (here shortened to nothing); a running one stays.
    app = create_app(model_saying(replay_server, *drafts(["One."], ["Two."])))
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        first = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        await read_events(client, first, until={"interrupt"})
        await wait_until(lambda: app._runs.sessions[first].ended is not None)
        app._runs.forget_after = 0.0
        second = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        assert list(app._runs.sessions) == [second]
        assert (await client.get(f"/runs/{first}")).status_code == 404
        assert (await client.get(f"/runs/{second}")).status_code == 200
        # The app's own store forgets the session's checkpoints with it.
        store = app.runner.store
        assert store is not None
        assert await store.latest(first) is None
        assert await store.latest(second) is not None


async def test_a_store_the_user_passed_keeps_forgotten_sessions(
    replay_server: ReplayServer,
) -> None:
    store = MemoryStore()
    app = create_app(model_saying(replay_server, *drafts(["One."], ["Two."])), store)
    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        first = (await client.post("/runs", json={"prompt": "hi"})).json()["session_id"]
        await read_events(client, first, until={"interrupt"})
        await wait_until(lambda: app._runs.sessions[first].ended is not None)
        app._runs.forget_after = 0.0
        await client.post("/runs", json={"prompt": "hi"})
        assert first not in app._runs.sessions
        assert (await store.latest(first)) is not None


async def test_a_body_over_the_limit_is_refused_while_read(replay_server: ReplayServer) -> None:
    app = create_app(model_saying(replay_server, *drafts(["unused"])))

    async def huge() -> AsyncIterator[bytes]:  # no Content-Length: refused mid-body
        yield b'{"prompt": "'
        for _ in range(100):
            yield b"x" * 65_536
        yield b'"}'

    async with running(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        refused = await client.post("/runs", content=huge())
        assert refused.status_code == 413
        declared = await client.post("/runs", content=b"x" * 100_000)
        assert declared.status_code == 413
        assert app._runs.sessions == {}  # nothing started

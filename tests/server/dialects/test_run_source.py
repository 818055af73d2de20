"""`start_run`: a run started through `Runs`, its events read in order until its end."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from starlette.requests import Request

from chronos import graph
from chronos.errors import RequestRefused
from chronos.graph import emit
from chronos.server import Retention
from chronos.server._assistants import Assistants
from chronos.server._metrics import ServerMetrics
from chronos.server._records import MemoryRecords
from chronos.server._runs import Runs
from chronos.server._threads import Threads
from chronos.server.dialects._run import RunSource, join_run, sse_response, start_run
from chronos.store import Checkpoint, MemoryStore
from chronos.stream import Broker, BrokerProtocol, Event, Subscription


async def _count(state: dict[str, Any]) -> dict[str, Any]:
    for i in range(state.get("n", 3)):
        emit("custom", {"i": i})
        await asyncio.sleep(state.get("delay", 0))
    return {"done": True}


async def _fail(state: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("no luck")


async def _ask(state: dict[str, Any]) -> dict[str, Any]:
    return {"answer": graph.interrupt("go on?")}


def _graph(name: str, node: Any) -> graph.CompiledGraph:
    g = graph.StateGraph(name)
    g.add_node("work", node)
    g.set_entry_point("work")
    g.set_finish_point("work")
    return g.compile()


@contextlib.asynccontextmanager
async def _open_runs(store: MemoryStore, broker: BrokerProtocol,
                     records: MemoryRecords) -> AsyncIterator[Runs]:
    """`Runs` of the `count`, `fail` and `ask` graphs over these parts, closed with the
    broker."""
    assistants = Assistants({"count": _graph("count", _count), "fail": _graph("fail", _fail),
                             "ask": _graph("ask", _ask)}, store, broker)
    runs = Runs(assistants, Threads(store, assistants, records), broker, records,
                ServerMetrics(), Retention())
    await runs.open()
    try:
        yield runs
    finally:
        await runs.aclose()
        await broker.aclose()


@pytest.fixture
async def runs() -> AsyncIterator[Runs]:
    async with _open_runs(MemoryStore(), Broker(), MemoryRecords()) as runs:
        yield runs


async def _read_to_end(run: RunSource) -> None:
    try:
        async for _ in run.batches():
            pass
    finally:
        await run.aclose()


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": []})


@pytest.mark.anyio
async def test_events_arrive_in_order_then_the_end_and_values(runs: Runs) -> None:
    run = await start_run(runs, _request(), "count", {"n": 3})
    try:
        events = [e async for batch in run.batches() for e in batch]
    finally:
        await run.aclose()
    assert [e.data["data"] for e in events if e.type == "custom"] == [{"i": 0}, {"i": 1},
                                                                       {"i": 2}]
    assert run.start is not None
    assert run.start["values"] == {"n": 3}
    assert run.end is not None
    assert run.end.status == "success"
    assert run.values == {"n": 3, "done": True}
    assert await runs.threads.find(run.thread_id) is None  # stateless: its thread is gone


@pytest.mark.anyio
async def test_a_failed_run_ends_with_its_error(runs: Runs) -> None:
    run = await start_run(runs, _request(), "fail", {})
    await _read_to_end(run)
    assert run.end is not None
    assert (run.end.status, run.end.error_type) == ("error", "NodeError")
    assert "no luck" in run.end.error


@pytest.mark.anyio
async def test_closing_early_cancels_the_run_unless_asked_to_continue(runs: Runs) -> None:
    for on_disconnect, status in (("cancel", "interrupted"), ("continue", "success")):
        run = await start_run(runs, _request(), "count", {"n": 20, "delay": 0.01},
                              on_disconnect=on_disconnect)
        async for batch in run.batches():
            if batch:
                break
        await run.aclose()
        await run.record.done.wait()
        assert run.record.status == status


@pytest.mark.anyio
async def test_a_thread_id_keeps_the_thread(runs: Runs) -> None:
    for n in (1, 2):
        run = await start_run(runs, _request(), "count", {"n": n}, thread_id="t-1")
        async for _ in run.batches():
            pass
        await run.aclose()
        assert run.end is not None
        assert run.end.status == "success"
    assert await runs.threads.find("t-1") is not None
    assert run.values == {"n": 2, "done": True}


@pytest.mark.anyio
async def test_a_stateless_run_writes_no_checkpoint_before_it_ends(runs: Runs) -> None:
    store = runs.threads.store
    for thread_id in (None, "t-d"):
        run = await start_run(runs, _request(), "count", {"n": 3, "delay": 0.02},
                              thread_id=thread_id)
        try:
            async for batch in run.batches():
                if any(e.type == "custom" for e in batch):
                    break  # inside its node
            if thread_id is None:  # stateless: nothing to resume from before it ends (or pauses)
                assert await store.history(run.thread_id) == []
            async for _ in run.batches():
                pass
        finally:
            await run.aclose()
        assert run.end is not None
        assert run.end.status == "success"
        assert run.values == {"n": 3, "delay": 0.02, "done": True}
    # On a thread, the checkpoint of its input came first (written behind the node's start,
    # durability "async" as the API's runs), then the node's.
    assert [c.ran for c in await store.history("t-d")] == [(), ("work",)]


class _CountingStore(MemoryStore):
    """Counts the reads of a session's latest checkpoint (a round trip on a real store)."""

    def __init__(self) -> None:
        super().__init__()
        self.latest_reads = 0

    async def latest(self, session_id: str) -> Checkpoint | None:
        self.latest_reads += 1
        return await super().latest(session_id)


@pytest.mark.anyio
async def test_a_stateless_run_reads_no_checkpoint_of_its_new_thread() -> None:
    store = _CountingStore()
    async with _open_runs(store, Broker(), MemoryRecords()) as runs:
        for thread_id, reads in ((None, 0), ("t-r", 1)):
            store.latest_reads = 0
            run = await start_run(runs, _request(), "count", {"n": 1}, thread_id=thread_id)
            await _read_to_end(run)
            assert run.values == {"n": 1, "done": True}
            assert store.latest_reads == reads


class _Writes(MemoryRecords):
    """Notes each record written (its collection, and a run's status), and counts the reads
    of a thread's runs."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.runs_read = 0

    async def values(self, collection: str) -> list[dict[str, Any]]:
        if collection.startswith("runs:"):
            self.runs_read += 1
        return await super().values(collection)

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        self.written.append(f"run {value['status']}" if collection.startswith("runs:")
                            else collection)
        await super().put(collection, key, value)


@pytest.mark.anyio
async def test_a_stateless_run_records_nothing_while_it_runs() -> None:
    # Its new thread's id is told to no one while it runs: neither the thread nor the run is
    # recorded on the model's way (nor the thread's runs read: it has none), nor after an end
    # that deletes them. A run on a thread is pending first.
    records = _Writes()
    async with _open_runs(MemoryStore(), Broker(), records) as runs:
        for thread_id, statuses, reads in ((None, [], 0),
                                           ("t-p", ["pending", "running", "success"], 1)):
            records.written.clear()
            records.runs_read = 0
            run = await start_run(runs, _request(), "count", {"n": 1}, thread_id=thread_id)
            assert records.runs_read == reads
            await _read_to_end(run)
            await runs.finished(run.record.info())
            assert run.values == {"n": 1, "done": True}
            assert [w.removeprefix("run ") for w in records.written
                    if w.startswith("run ")] == statuses
            if thread_id is None:
                assert records.written == []
                assert await runs.threads.find(run.thread_id) is None


@pytest.mark.anyio
async def test_a_stateless_run_that_stays_paused_is_recorded_at_its_end() -> None:
    # Kept for the run that answers it, by its thread's id: recorded before its end marker.
    records = _Writes()
    async with _open_runs(MemoryStore(), Broker(), records) as runs:
        run = await start_run(runs, _request(), "ask", {}, keep_paused=True)
        await _read_to_end(run)
        assert run.end is not None
        assert run.end.status == "success"
        assert records.written == ["threads", "run success"]
        kept = await runs.threads.find(run.thread_id)
        assert kept is not None
        assert kept.temporary
        assert kept.metadata["graph_id"] == "ask"
        assert [r.status for r in await runs.of_thread(run.thread_id)] == ["success"]
        _, paused = await run.final_state()
        assert [p["value"] for p in paused] == ["go on?"]


class _StdlibJSONBroker:
    """A broker of the user's own, which encodes event data with the standard `json`."""

    def __init__(self) -> None:
        self.inner = Broker()

    def publish(self, event: Event, topic: str | None = None) -> None:
        json.dumps(event.data)
        self.inner.publish(event, topic)

    def subscribe(self, id: str, topics: Iterable[str] | None = None, **options: Any
                  ) -> Subscription:
        return self.inner.subscribe(id, topics, **options)

    def unsubscribe(self, id: str) -> None:
        self.inner.unsubscribe(id)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.anyio
async def test_the_run_markers_carry_plain_data_to_any_broker() -> None:
    # The in-process broker takes the markers encoded once; another broker gets plain data.
    for broker in (Broker(), _StdlibJSONBroker()):
        async with _open_runs(MemoryStore(), broker, MemoryRecords()) as runs:
            run = await start_run(runs, _request(), "count", {"n": 1})
            async with asyncio.timeout(10):  # a lost `run_end` would leave it waiting
                await _read_to_end(run)
            assert run.start is not None
            assert run.start["values"] == {"n": 1}
            assert run.start["run_id"] == run.run_id
            assert run.end is not None
            assert run.end.status == "success"


@pytest.mark.anyio
async def test_the_run_goes_first_up_to_its_first_wait(runs: Runs) -> None:
    # The model's request (here: the node's first sleep) is not kept waiting on the
    # dialect's response.
    run = await start_run(runs, _request(), "count", {"n": 2, "delay": 0.05})
    try:
        assert run.record.status == "running"  # not "pending": its task has begun
    finally:
        await run.aclose()


@pytest.mark.anyio
async def test_an_unknown_graph_is_refused_before_any_thread_is_made(runs: Runs) -> None:
    with pytest.raises(RequestRefused) as refused:
        await start_run(runs, _request(), "nope", {})
    assert refused.value.status_code == 404
    assert await runs.threads.all() == []


@pytest.mark.anyio
async def test_join_run_reads_the_run_in_progress_from_its_start(runs: Runs) -> None:
    run = await start_run(runs, _request(), "count", {"n": 5, "delay": 0.02}, thread_id="t-j")
    async for batch in run.batches():
        if batch:
            break  # the run has begun
    joined = await join_run(runs, _request(), "t-j")
    assert joined is not None
    try:
        events = [e async for batch in joined.batches() for e in batch]
    finally:
        await joined.aclose()
        await run.aclose()
    # Every event from the start, though the join came after the first, and the run went on.
    assert [e.data["data"] for e in events if e.type == "custom"] == [{"i": i} for i in range(5)]
    assert joined.end is not None
    assert joined.end.status == "success"
    assert await join_run(runs, _request(), "t-j") is None  # nothing in progress any more


@pytest.mark.anyio
async def test_join_run_refuses_an_unknown_thread(runs: Runs) -> None:
    with pytest.raises(RequestRefused) as refused:
        await join_run(runs, _request(), "nope")
    assert refused.value.status_code == 404



@pytest.mark.anyio
async def test_the_response_streams_from_the_requests_own_task(runs: Runs) -> None:
    """No task group's task of its own (Starlette's `StreamingResponse` under ASGI 2.3)."""
    run = await start_run(runs, _request(), "count", {"n": 0})
    sent: list[tuple[Any, asyncio.Task[Any] | None]] = []

    async def frames() -> AsyncIterator[bytes]:
        yield b"data: a\n\n"

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append((message, asyncio.current_task()))

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST", "path": "/",
             "headers": []}
    try:
        await sse_response(run, frames())(scope, receive, send)
    finally:
        await run.aclose()
    assert [m.get("body") for m, _ in sent] == [None, b"data: a\n\n", b""]
    assert {task for _, task in sent} == {asyncio.current_task()}

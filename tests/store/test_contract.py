"""One contract, every store: memory, SQLite and the real PostgreSQL server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from chronos.errors import CheckpointNotFound, RunConflictError, StateNotSerializable, StoreError
from chronos.store import Checkpoint, CheckpointStore, MemoryStore, SessionInfo, SessionLeasing

pytestmark = pytest.mark.anyio


def make(id: str, session: str = "s1", step: int = 0, **changes: object) -> Checkpoint:
    checkpoint = Checkpoint(
        id=id, session_id=session, run_id="r1", graph_id="g", step=step, status="running",
        ran=("a",), next=("b", "c"), state={"n": step, "text": "héllo", "items": [1, 2]},
        parent_id=None, created_at=1700000000.5, error="",
    )
    return dataclasses.replace(checkpoint, **changes)  # type: ignore[arg-type]


async def test_put_then_get_round_trips_every_field(store: CheckpointStore) -> None:
    original = make("c1", parent_id="c0", status="paused", error="boom", ran=(), next=("x",),
                    pending={"web": {"hits": [1, 2]}, "docs": {}})
    await store.put(original)
    assert await store.get("c1") == original


async def test_the_position_fields_round_trip_too(store: CheckpointStore) -> None:
    original = make(
        "c1", path=("sub",), pending={"web": {"hits": [1]}, "route": {"n": 1}},
        interrupts=({"id": "i1", "node_id": "ask", "task": "ask", "index": 0, "value": "ok?"},),
        answers={"ask": ("yes",)}, sends=(("map", {"item": 1}),),
        gotos={"route": ("b", ("map", {"item": 2}))},
    )
    await store.put(original)
    assert await store.get("c1") == original


async def test_latest_is_the_last_written_of_the_session(store: CheckpointStore) -> None:
    assert await store.latest("s1") is None
    await store.put(make("c1", step=0))
    await store.put(make("c2", step=1))
    await store.put(make("other", session="s2", step=7))
    latest = await store.latest("s1")
    assert latest is not None
    assert latest.id == "c2"


async def test_history_is_in_write_order_and_limit_keeps_the_newest(
    store: CheckpointStore,
) -> None:
    # Steps deliberately out of order: a time-travel branch repeats step numbers.
    for id, step in [("c1", 0), ("c2", 1), ("c3", 2), ("c4", 1)]:
        await store.put(make(id, step=step))
    await store.put(make("x", session="s2"))
    assert [c.id for c in await store.history("s1")] == ["c1", "c2", "c3", "c4"]
    assert [c.id for c in await store.history("s1", limit=2)] == ["c3", "c4"]
    assert await store.history("s1", limit=0) == []
    assert await store.history("nobody") == []


async def test_sessions_are_listed_by_their_latest_checkpoint_newest_first(
    store: CheckpointStore,
) -> None:
    assert await store.sessions() == []
    await store.put(make("a1", session="a", created_at=100.0, ran=(), next=("plan",)))
    await store.put(make("b1", session="b", created_at=101.0, graph_id="other"))
    await store.put(make("a2", session="a", step=1, created_at=102.0, status="paused",
                         ran=("plan",), next=("review",)))
    assert await store.sessions() == [
        SessionInfo(session_id="a", graph_id="g", status="paused", ran=("plan",),
                    next=("review",), checkpoints=2, started_at=100.0, updated_at=102.0,
                    latest_id="a2"),
        SessionInfo(session_id="b", graph_id="other", status="running", ran=("a",),
                    next=("b", "c"), checkpoints=1, started_at=101.0, updated_at=101.0,
                    latest_id="b1"),
    ]
    # Written to last, "b" comes first, whatever its times say.
    await store.put(make("b2", session="b", step=1, created_at=50.0, status="completed",
                         next=()))
    assert [(s.session_id, s.latest_id, s.checkpoints) for s in await store.sessions()] == [
        ("b", "b2", 2), ("a", "a2", 2)]
    assert [s.session_id for s in await store.sessions(limit=1)] == ["b"]
    assert await store.sessions(limit=0) == []


async def test_unknown_checkpoint_raises_checkpoint_not_found(store: CheckpointStore) -> None:
    with pytest.raises(CheckpointNotFound) as caught:
        await store.get("missing")
    assert caught.value.checkpoint_id == "missing"


async def test_delete_session_removes_its_checkpoints_and_no_others(
    store: CheckpointStore,
) -> None:
    await store.put(make("a1", session="a"))
    await store.put(make("a2", session="a", step=1, parent_id="a1"))
    await store.put(make("b1", session="b"))
    assert await store.delete_session("a") == 2
    assert await store.latest("a") is None
    assert await store.history("a") == []
    with pytest.raises(CheckpointNotFound):
        await store.get("a1")
    assert [s.session_id for s in await store.sessions()] == ["b"]
    assert (await store.get("b1")).session_id == "b"
    assert await store.delete_session("a") == 0
    assert await store.delete_session("never") == 0
    # The session can start again from nothing.
    await store.put(make("a1", session="a"))
    assert [c.id for c in await store.history("a")] == ["a1"]


async def test_delete_session_refuses_a_session_a_run_holds(store: CheckpointStore) -> None:
    await store.put(make("h1", session="held"))
    assert isinstance(store, SessionLeasing)
    async with store.lease("held"):
        with pytest.raises(RunConflictError):
            await store.delete_session("held")
    assert [c.id for c in await store.history("held")] == ["h1"]
    assert await store.delete_session("held") == 1


async def test_duplicate_id_is_rejected_and_the_first_kept(store: CheckpointStore) -> None:
    await store.put(make("c1", step=0))
    with pytest.raises(StoreError):
        await store.put(make("c1", step=5))
    assert (await store.get("c1")).step == 0


async def test_unserialisable_state_names_the_key_and_writes_nothing(
    store: CheckpointStore,
) -> None:
    bad = make("c1", state={"fine": 1, "handle": object()})
    with pytest.raises(StateNotSerializable) as caught:
        await store.put(bad)
    assert caught.value.key == "handle"
    assert await store.latest("s1") is None
    with pytest.raises(StateNotSerializable) as caught_key:
        await store.put(make("c2", state={1: "non-string key"}))
    assert caught_key.value.key == "1"
    with pytest.raises(StateNotSerializable) as caught_pending:
        await store.put(make("c3", pending={"web": {"socket": object()}}))
    assert caught_pending.value.key == "socket"
    assert await store.latest("s1") is None


async def test_stored_state_is_a_snapshot(store: CheckpointStore) -> None:
    state = {"items": [1]}
    await store.put(make("c1", state=state))
    state["items"].append(2)
    loaded = await store.get("c1")
    assert loaded.state == {"items": [1]}
    loaded.state["items"].append(3)  # type: ignore[index]
    assert (await store.get("c1")).state == {"items": [1]}


async def test_state_comes_back_equal_to_what_was_stored(store: CheckpointStore) -> None:
    state = {"nested": {"a": [None, True, 1.5, -0.0, 2**63 - 1, 1e308, "é🔑\u2028"]}, "n": 0}
    await store.put(make("c1", state=state, pending={"web": {"hits": [[1, 2], {"k": []}]}}))
    loaded = await store.get("c1")
    assert loaded.state == state
    assert loaded.pending == {"web": {"hits": [[1, 2], {"k": []}]}}


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(("value", "reason"), [
    (float("nan"), "the value is nan, which JSON stores as null"),
    ([1.0, float("inf")], "the value[1] is inf, which JSON stores as null"),
    ({"deep": [-float("inf")]}, "the value['deep'][0] is -inf, which JSON stores as null"),
    (datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
     "the value is a datetime, which would come back from JSON as a str"),
    ((1, 2), "the value is a tuple, which would come back from JSON as a list"),
    ({"pair": [("a", 1)]},
     "the value['pair'][0] is a tuple, which would come back from JSON as a list"),
    (Point(1), "the value is a Point, which would come back from JSON as a dict"),
])
async def test_a_value_json_would_change_is_refused_and_nothing_is_written(
    store: CheckpointStore, value: object, reason: str,
) -> None:
    with pytest.raises(StateNotSerializable) as caught:
        await store.put(make("c1", state={"ok": 1, "bad": value}))
    assert (caught.value.key, str(caught.value)) == (
        "bad", f"state key 'bad' cannot be serialised: {reason}")
    with pytest.raises(StateNotSerializable) as in_pending:
        await store.put(make("c2", pending={"web": {"bad": value}}))
    assert in_pending.value.key == "bad"
    assert await store.latest("s1") is None


async def test_aclose_is_idempotent_and_a_closed_store_says_so(store: CheckpointStore) -> None:
    await store.put(make("c1"))
    await store.aclose()
    await store.aclose()
    if isinstance(store, MemoryStore):  # holds nothing to release, so it keeps answering
        assert (await store.get("c1")).id == "c1"
    else:
        with pytest.raises(StoreError, match="store is closed"):
            await store.get("c1")
        with pytest.raises(StoreError, match="store is closed"):
            await store.put(make("c2"))

"""What a checkpoint is, what a store must do, and how state becomes bytes.

Every store encodes state the same way (orjson), before any I/O: state that cannot be stored
fails here, naming its key, and nothing is half-written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import orjson

from chronos._records import quick_init
from chronos.errors import StateNotSerializable

__all__ = [
    "Checkpoint",
    "CheckpointStatus",
    "CheckpointStore",
    "SessionInfo",
    "SessionLeasing",
    "decode_position",
    "decode_state",
    "encode_pending",
    "encode_position",
    "encode_state",
    "has_position",
]

CheckpointStatus = Literal["running", "paused", "completed", "failed"]
"""A run's status when the checkpoint was written: "running" means it was still going."""


@quick_init  # made per step: without slots, its fields are set in one step (_records.py)
@dataclass(frozen=True)
class Checkpoint:
    """A run's state after a step, and the step that comes next.

    `ran` lists the nodes that had just finished (empty for the checkpoint taken when a run
    starts or resumes); `next` the nodes to run on resume (empty once completed). While a
    step of parallel branches is under way, `pending` holds the updates of the branches that
    already finished, by node id, so a resume runs only the others. `step`
    counts the session's checkpoints along this line of history; `parent_id` is the
    checkpoint this one follows, which a fork or a time-travel resume makes a branch point.
    `path` is empty unless the run is inside a subgraph (paused at an interrupt node there,
    say): it names the subgraph nodes enclosing `ran` and `next`, outermost first, and `state`
    is the subgraph's state.

    Four fields carry `graph.interrupt()`, `graph.Send` and `graph.Command`, all empty
    otherwise: `interrupts` the questions a paused run waits on (each `{"id", "node_id",
    "task", "index", "value"}`); `answers` the answers already given, by task, replayed in
    order when the task runs again; `sends` the `(node, input)` tasks of `next` started by a
    `Send`, run after its plain nodes; `gotos` where finished branches in `pending` sent the
    run with `Command(goto=...)`, by task: node ids, and `(node, input)` pairs for `Send`s.

    `metadata` is what the run recorded beside its state, as JSON: under "usage", the model
    usage and cost so far by node (`{node: {"input_tokens": ..., "cost": ...}}`), when any;
    under "trace", the W3C `traceparent` of a traced run, which a resume's trace continues.
    """

    id: str
    session_id: str
    run_id: str
    graph_id: str
    step: int
    status: CheckpointStatus
    ran: tuple[str, ...]
    next: tuple[str, ...]
    state: Mapping[str, Any]
    parent_id: str | None = None
    created_at: float = 0.0
    error: str = ""
    pending: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: tuple[str, ...] = ()
    interrupts: tuple[Mapping[str, Any], ...] = ()
    answers: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    sends: tuple[tuple[str, Any], ...] = ()
    gotos: Mapping[str, tuple[str | tuple[str, Any], ...]] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as its checkpoints describe it: one row of `CheckpointStore.sessions()`.

    Everything but `checkpoints` (how many the session has) and `started_at` (the time of its
    earliest) comes from the session's latest checkpoint, `latest_id`: a "running" status there
    means a run still going, or one that crashed and can be resumed. `metadata` is the latest
    checkpoint's (its usage totals).
    """

    session_id: str
    graph_id: str
    status: CheckpointStatus
    ran: tuple[str, ...]
    next: tuple[str, ...]
    checkpoints: int
    started_at: float
    updated_at: float
    latest_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


class CheckpointStore(Protocol):
    """Durable storage of checkpoints: `MemoryStore`, `SQLiteStore`, `PostgresStore`, yours.

    ```python
    async with store.from_url("sqlite:///runs.db") as checkpoints:
        runner = graph.Runner(compiled, checkpoints)
    ```
    """

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint durably before returning.

        Raises:
            StateNotSerializable: a state value cannot be encoded; nothing was written.
            StoreError: the id exists already, or the backend failed.
        """

    async def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with this id.

        Raises:
            CheckpointNotFound: there is none.
        """

    async def latest(self, session_id: str) -> Checkpoint | None:
        """The session's most recently written checkpoint, or None."""

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        """The session's checkpoints in the order they were written (the last `limit`)."""

    async def sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        """Every session with a checkpoint, the most recently written first (the first `limit`).

        Reads no state, so listing stays cheap however large the states are.
        """

    async def delete_session(self, session_id: str) -> int:
        """Remove every checkpoint of the session; how many there were (0 for an unknown one).

        A store that has `lease` deletes under the session's lease, so a session a run is
        executing is never half-deleted under it.

        Raises:
            RunConflictError: a run holds the session; nothing was deleted.
        """

    async def aclose(self) -> None:
        """Release connections and threads. Idempotent."""


@runtime_checkable
class SessionLeasing(Protocol):
    """A store that can keep two processes from executing the same session at once.

    Optional: the `Runner` takes `store.lease(session_id)` once around each run when the store
    has it (`MemoryStore` within its process, `SQLiteStore` across the processes sharing its
    file, `PostgresStore` across machines); with a store without it, only runs of the same
    `Runner` exclude each other.
    """

    def lease(self, session_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the session for the duration of the `async with` block.

        The lease must be given up when the block exits, however it exits, and by the
        backend itself when the holder's process dies, so a killed run can be resumed.

        Raises:
            RunConflictError: another holder has the session; raised at once, never waiting.
        """
        ...


def encode_state(state: Mapping[str, Any]) -> bytes:
    """The state as JSON bytes, which decode to a state equal to this one.

    A value JSON would change on the way back (a tuple becomes a list, a datetime a string,
    NaN or infinity null, a dataclass a dict) is refused here, not changed silently: the
    check is one decode and one comparison, both in C.

    Raises:
        StateNotSerializable: naming the first key whose value cannot be stored as it is.
    """
    try:
        data = orjson.dumps(state)
    except TypeError:
        pass
    else:
        if orjson.loads(data) == state:
            return data
    for key, value in state.items():
        if not isinstance(key, str):
            raise StateNotSerializable(repr(key), "state keys must be strings")
        problem = _round_trip_problem(value)
        if problem is not None:
            raise StateNotSerializable(key, problem)
    raise StateNotSerializable("?", "the state is not a JSON object")  # pragma: no cover


def _round_trip_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as it is, or None if it can."""
    try:
        back = orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        return str(exc)
    return _difference(value, back, "the value")


def _difference(value: Any, back: Any, where: str) -> str | None:
    """Where and how `back`, read from JSON, differs from `value`; None if it does not."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, which JSON stores as null"
    if isinstance(value, dict) and isinstance(back, dict):
        for key, item in value.items():
            found = _difference(item, back.get(key), f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(value, list) and isinstance(back, list) and len(value) == len(back):
        for index, (item, item_back) in enumerate(zip(value, back, strict=True)):
            found = _difference(item, item_back, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    if value == back:
        return None
    return (f"{where} is a {type(value).__name__}, which would come back from JSON as a "
            f"{type(back).__name__}")


def encode_pending(pending: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Finished branches' updates as JSON bytes; a bad value raises naming its state key."""
    if not pending:
        return b"{}"
    for update in pending.values():
        encode_state(update)
    return orjson.dumps(pending)


def decode_state(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """The state from `encode_state`'s bytes."""
    state: dict[str, Any] = orjson.loads(data if not isinstance(data, memoryview) else bytes(data))
    return state


def encode_position(checkpoint: Checkpoint) -> bytes:
    """Where a checkpoint stands (`next`, `path`, `interrupts`, `answers`, `sends`, `gotos`)
    as JSON, and its `metadata`.

    A plain list of node ids when only `next` is set, as checkpoints were first written, so
    older rows read back unchanged; an object otherwise.

    Raises:
        StateNotSerializable: an interrupt value, an answer or a `Send` input cannot be
            encoded (named "interrupts", "answers", "sends" or "gotos").
    """
    c = checkpoint
    if not has_position(c):
        return orjson.dumps(c.next)
    # Lists where the checkpoint holds tuples, as `decode_position` reads them back, so that
    # the round-trip check of `encode_state` judges only the values users put in.
    position: dict[str, Any] = {"next": list(c.next), "path": list(c.path)}
    if c.interrupts:
        position["interrupts"] = list(c.interrupts)
    if c.answers:
        position["answers"] = {task: list(given) for task, given in c.answers.items()}
    if c.sends:
        position["sends"] = [[node, arg] for node, arg in c.sends]
    if c.gotos:
        position["gotos"] = {task: [t if type(t) is str else list(t) for t in targets]
                             for task, targets in c.gotos.items()}
    if c.metadata:
        position["metadata"] = c.metadata
    return encode_state(position)


def has_position(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint holds more than `next`, which `encode_position` then encodes."""
    c = checkpoint
    return bool(c.path or c.interrupts or c.answers or c.sends or c.gotos or c.metadata)


def decode_position(data: bytes | str) -> dict[str, Any]:
    """The keyword arguments of `Checkpoint` that `encode_position` encoded."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        return {"next": tuple(value), "path": ()}
    return {
        "next": tuple(value["next"]),
        "path": tuple(value["path"]),
        "interrupts": tuple(value.get("interrupts", ())),
        "answers": {k: tuple(v) for k, v in value.get("answers", {}).items()},
        "sends": tuple((node, arg) for node, arg in value.get("sends", ())),
        "gotos": {task: tuple(t if type(t) is str else tuple(t) for t in targets)
                  for task, targets in value.get("gotos", {}).items()},
        "metadata": value.get("metadata", {}),
    }

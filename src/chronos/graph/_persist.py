"""Writing a run's checkpoints, as its durability says: now, behind the next step, or at exit.

Kept apart from the run loop: the loop decides when a step is done, this module how that
is recorded, and which writes may still be under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from chronos._telemetry import TRACE_KEY
from chronos.graph._command import Send
from chronos.graph._interrupt import Interrupt
from chronos.graph._plan import Routed, Step
from chronos.graph._run import Run, new_id
from chronos.graph._types import State
from chronos.graph._usage import USAGE_KEY
from chronos.store import Checkpoint, CheckpointStatus

__all__ = ["checkpoint", "record_failure", "settle"]

_NOTHING: Mapping[str, Any] = MappingProxyType({})  # shared by checkpoints with no such field


async def checkpoint(
    run: Run, state: State, ran: tuple[str, ...], nxt: Step, status: CheckpointStatus,
    error: str = "", pending: Mapping[str, Mapping[str, Any]] | None = None,
    path: tuple[str, ...] = (), interrupts: tuple[Interrupt, ...] = (),
) -> None:
    """Write a checkpoint as the run's durability says.

    "sync" writes before the run goes on. "async" hands a "running" checkpoint to the store
    and goes on; the write is awaited before the next one starts (so they land in order, and
    at most one step is ever unrecorded) and before the run ends. "exit" writes only the
    checkpoints that end a run: paused, failed, completed.
    """
    store = run.store
    assert store is not None
    durability = run.durability
    if status == "running" and durability == "exit":
        return
    nodes: tuple[str, ...] = nxt  # type: ignore[assignment]
    sends: tuple[tuple[str, Any], ...] = ()
    if nxt and type(nxt[-1]) is not str:  # Sends come last in a step
        nodes = tuple(t for t in nxt if type(t) is str)
        sends = tuple((t.node, t.arg) for t in nxt if isinstance(t, Send))
    written = Checkpoint(
        id=new_id(), session_id=run.session_id, run_id=run.run_id, graph_id=run.graph.id,
        step=run.step_no, status=status, ran=ran, next=nodes, state=state,
        parent_id=run.checkpoint_id, created_at=time.time(), error=error,
        pending=dict(pending) if pending else _NOTHING, path=path,
        interrupts=tuple(i.record() for i in interrupts) if interrupts else (),
        answers=dict(run.answers) if run.answers and status != "completed" else _NOTHING,
        sends=sends,
        gotos=_gotos(pending) if pending else _NOTHING,
        metadata=_metadata(run),
    )
    if run.writing is not None:
        await settle(run, raise_errors=True)
    if status == "running" and durability == "async":
        run.writing = asyncio.ensure_future(store.put(written))
    else:
        await store.put(written)
    run.checkpoint_id = written.id
    run.step_no += 1
    if run.hub.observed():
        run.hub.publish("checkpoint", ran[-1] if ran else "", data=written.id, path=path)


def _gotos(pending: Mapping[str, Mapping[str, Any]]) -> Mapping[str, tuple[Any, ...]]:
    """Where finished branches' `Command(goto=...)`s lead: kept beside their updates, so a
    resume after a crash still takes them."""
    gotos = {task: tuple(t if isinstance(t, str) else (t.node, t.arg) for t in update.goto)
             for task, update in pending.items() if type(update) is Routed}
    return gotos or _NOTHING


def _metadata(run: Run) -> Mapping[str, Any]:
    """What the run records beside its state: usage so far, and its trace context."""
    # The ledger's dict, not the ledger: its `__bool__` is a Python call, on every checkpoint.
    if not (run.usage.by_node or run.traceparent):
        return _NOTHING
    metadata: dict[str, Any] = {USAGE_KEY: run.usage.record()} if run.usage.by_node else {}
    if run.traceparent:
        metadata[TRACE_KEY] = run.traceparent
    return metadata


async def settle(run: Run, *, raise_errors: bool = False) -> None:
    """Wait for the checkpoint write under way ("async" durability), if any."""
    writing, run.writing = run.writing, None
    if writing is None:
        return
    if raise_errors:
        await writing
        return
    with contextlib.suppress(Exception):  # a run already failing keeps its own error
        await writing


async def record_failure(run: Run, exc: Exception) -> None:
    """A `failed` checkpoint: the last good state, and the step to retry on resume."""
    await settle(run)
    # The original error matters more than a failure to record it.
    with contextlib.suppress(Exception):
        await checkpoint(run, run.stable, (), run.current, "failed", error=str(exc),
                          pending=run.pending, path=run.path)

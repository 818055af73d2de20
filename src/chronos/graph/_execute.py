"""The run loop: execute the steps the planner chooses, checkpoint after each, stream it all.

Per step: run the step's nodes (one inline; several as sibling tasks), merge their updates
through the reducers, ask `_plan` what runs next, write a checkpoint naming it, then move on.
Events are only built when someone listens (`hub.active`), so an unobserved run without a
store pays for little more than the node calls themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from types import MappingProxyType
from typing import Any, Literal

from chronos.errors import GraphError, NodeError, StepLimitError
from chronos.graph._builder import CompiledGraph, NodeSpec
from chronos.graph._events import CURRENT_NODE, EventHub
from chronos.graph._plan import (
    Replace,
    apply_updates,
    entry_nodes,
    interrupts_in,
    next_nodes,
    normalize_update,
    successors,
)
from chronos.graph._types import END, State
from chronos.store import Checkpoint, CheckpointStatus, CheckpointStore
from chronos.stream._emit import event_sink

__all__ = ["RunState", "RunStatus", "execute", "new_id"]

RunStatus = Literal["running", "paused", "completed", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class RunState:
    """Where a run stands: what `run` and `resume` return.

    `status` is "completed", or "paused" at an interrupt node (`node_id`, resume with
    `runner.resume(session_id, update)`). `next` lists the nodes a resume would run; `seq` is
    the number of the run's last event; times are seconds since the epoch.
    """

    run_id: str
    session_id: str
    graph_id: str
    node_id: str
    status: RunStatus
    state: Mapping[str, Any]
    seq: int
    started_at: float
    updated_at: float
    next: tuple[str, ...] = ()
    checkpoint_id: str | None = None


_ids = count()
_prefix = uuid.uuid4().hex[:16]


def _new_prefix() -> None:
    global _prefix
    _prefix = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)  # a forked child must not repeat our ids


def new_id() -> str:
    """A process-unique id that no other process picks: 64 random bits and a counter."""
    return f"{_prefix}{next(_ids):08x}"


class Run:
    """Everything one run needs, passed explicitly instead of through a config dict."""

    __slots__ = ("checkpoint_id", "current", "graph", "hub", "node_id", "pending", "run_id",
                 "session_id", "stable", "started_at", "state", "step_limit", "step_no", "steps",
                 "store")

    def __init__(
        self,
        graph: CompiledGraph,
        hub: EventHub,
        store: CheckpointStore | None,
        state: State,
        *,
        step_limit: int,
        parent: Checkpoint | None,
    ) -> None:
        self.graph = graph
        self.hub = hub
        self.store = store
        self.run_id = hub.run_id
        self.session_id = hub.session_id
        self.state = state
        self.stable = state  # the state as last checkpointed (or given): what a failure keeps
        self.current: tuple[str, ...] = ()  # the step in flight: what a resume runs again
        # Updates of the current step's branches that already finished (and were recorded).
        self.pending: dict[str, Mapping[str, Any]] = dict(parent.pending) if parent else {}
        self.step_limit = step_limit
        self.steps = 0
        self.node_id = ""
        self.checkpoint_id = parent.id if parent is not None else None
        self.step_no = parent.step + 1 if parent is not None else 0
        self.started_at = time.time()

    def result(self, status: RunStatus, next: tuple[str, ...] = ()) -> RunState:
        return RunState(
            run_id=self.run_id, session_id=self.session_id, graph_id=self.graph.id,
            node_id=self.node_id, status=status, state=MappingProxyType(self.state),
            seq=self.hub.seq, started_at=self.started_at, updated_at=time.time(), next=next,
            checkpoint_id=self.checkpoint_id,
        )


async def execute(run: Run, step: tuple[str, ...], *, resumed: bool, write_first: bool) -> (
    RunState
):
    """Run from `step` until the graph completes or pauses; record a failure before raising."""
    run.current = step
    try:
        with event_sink(run.hub.sink):  # one sink per run; CURRENT_NODE says who emits
            return await _loop(run, step, resumed=resumed, write_first=write_first)
    except asyncio.CancelledError:
        # No checkpoint here: the last one written stays the one to resume from.
        run.hub.end("cancelled", run.node_id, state=run.stable, error="cancelled")
        raise
    except Exception as exc:
        if run.store is not None:
            await _record_failure(run, exc)
        run.hub.end("error", run.node_id, state=run.stable, error=str(exc))
        raise


async def _loop(run: Run, step: tuple[str, ...], *, resumed: bool, write_first: bool) -> RunState:
    graph, hub, store = run.graph, run.hub, run.store
    state = run.state
    if write_first and store is not None:
        await _checkpoint(run, state, (), step, _status(graph, step, skip_interrupt=resumed),
                          pending=run.pending)
    if not step:
        return _finish(run, "completed", ())
    if not resumed and graph.has_interrupts and interrupts_in(graph, step):
        return _finish(run, "paused", step)
    while True:
        run.steps += 1
        if run.steps > run.step_limit:
            raise StepLimitError(run.step_limit)
        run.node_id = step[0]
        state = await run_step(run, graph, step, state, (), record=store is not None)
        run.state = state
        if len(step) == 1:
            nxt = next_nodes(graph, state, step)
            if hub.active:
                _transitions(hub, {step[0]: nxt}, ())
        else:
            routes = successors(graph, state, step)
            nxt = tuple(dict.fromkeys(t for targets in routes.values() for t in targets))
            if hub.active:
                _transitions(hub, routes, ())
        status = _status(graph, nxt, skip_interrupt=False)
        if store is not None:
            await _checkpoint(run, state, step, nxt, status)
        run.stable, run.current, run.pending = state, nxt, {}
        if status != "running":
            return _finish(run, status, nxt)
        step = nxt


def _status(graph: CompiledGraph, step: tuple[str, ...], *, skip_interrupt: bool) -> (
    CheckpointStatus
):
    if not step:
        return "completed"
    if not skip_interrupt and graph.has_interrupts and interrupts_in(graph, step):
        return "paused"
    return "running"


def _finish(run: Run, status: CheckpointStatus, nxt: tuple[str, ...]) -> RunState:
    if status == "paused":
        run.node_id = interrupts_in(run.graph, nxt)[0]
        run.hub.end("interrupt", run.node_id, state=run.state, data=list(nxt))
        return run.result("paused", nxt)
    run.hub.end("completed", run.node_id, state=run.state)
    return run.result("completed")


def _transitions(hub: EventHub, routes: Mapping[str, tuple[str, ...]], path: tuple[str, ...]) -> (
    None
):
    for source, targets in routes.items():
        for target in targets or (END,):
            hub.publish("edge_transition", source, data={"from": source, "to": target},
                        path=path)


async def _checkpoint(
    run: Run, state: State, ran: tuple[str, ...], nxt: tuple[str, ...], status: CheckpointStatus,
    error: str = "", pending: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    assert run.store is not None
    checkpoint = Checkpoint(
        id=new_id(), session_id=run.session_id, run_id=run.run_id, graph_id=run.graph.id,
        step=run.step_no, status=status, ran=ran, next=nxt, state=state,
        parent_id=run.checkpoint_id, created_at=time.time(), error=error,
        pending=dict(pending) if pending else {},
    )
    await run.store.put(checkpoint)
    run.checkpoint_id = checkpoint.id
    run.step_no += 1
    if run.hub.active:
        run.hub.publish("checkpoint", ran[-1] if ran else "", data=checkpoint.id)


async def _record_failure(run: Run, exc: Exception) -> None:
    """A `failed` checkpoint: the last good state, and the step to retry on resume."""
    # The original error matters more than a failure to record it.
    with contextlib.suppress(Exception):
        await _checkpoint(run, run.stable, (), run.current, "failed", error=str(exc),
                          pending=run.pending)


async def run_step(
    run: Run,
    graph: CompiledGraph,
    step: tuple[str, ...],
    state: State,
    path: tuple[str, ...],
    *,
    record: bool = False,
) -> State:
    """Run one step's nodes on `state` and return the merged new state.

    With `record`, each branch of a parallel step is checkpointed as it finishes (its update
    in `pending`), and branches a resumed checkpoint lists as finished do not run again.
    """
    updates: Sequence[Mapping[str, Any]]
    if len(step) == 1 and not run.pending:
        updates = (await _run_node(run, graph.nodes[step[0]], state, path),)
    else:
        done = run.pending if record else {}
        todo = [n for n in step if n not in done]

        async def finished(index: int, update: Mapping[str, Any]) -> None:
            done[todo[index]] = update
            await _checkpoint(run, state, (todo[index],), step, "running", pending=done)

        results = await _all([_run_node(run, graph.nodes[n], state, path) for n in todo],
                             on_done=finished if record else None)
        fresh = dict(zip(todo, results, strict=True))
        updates = [fresh[n] if n in fresh else done[n] for n in step]
    try:
        new = apply_updates(graph, state, updates)
    except Exception as exc:
        raise NodeError(f"merging the updates of {list(step)} failed: {exc!r}",
                        node_id=step[0], run_id=run.run_id) from exc
    hub = run.hub
    if hub.active:
        snapshot = MappingProxyType(new)
        for node_id, update in zip(step, updates, strict=True):
            hub.publish("node_end", node_id, state=snapshot,
                        data=MappingProxyType(dict(update)), path=path)
    return new


async def _run_node(run: Run, spec: NodeSpec, state: State, path: tuple[str, ...]) -> (
    Mapping[str, Any]
):
    hub = run.hub
    node_id = spec.id
    if hub.active:
        hub.publish("node_start", node_id, path=path)
    given = dict(state)  # the node may change its copy freely; the run's state stays as it was
    token = CURRENT_NODE.set((node_id, path))
    try:
        if spec.subgraph is not None:
            final = await _run_subgraph(run, spec.subgraph, given, (*path, node_id))
            return Replace(normalize_update(node_id, final, state, final))
        function = spec.function
        if function is None:
            return {}
        if spec.is_async:
            result = await function(given)  # type: ignore[misc]
        elif spec.inline:
            result = function(given)
            if inspect.isawaitable(result):
                result = await result
        else:
            result = await asyncio.to_thread(function, given)  # copies the emit sink
        return normalize_update(node_id, given, state, result)
    except GraphError:
        raise
    except Exception as exc:
        raise NodeError(f"node {node_id!r} failed: {exc!r}", node_id=node_id,
                        run_id=run.run_id) from exc
    finally:
        CURRENT_NODE.reset(token)


async def _run_subgraph(run: Run, graph: CompiledGraph, state: State, path: tuple[str, ...]) -> (
    State
):
    step = entry_nodes(graph, state)
    while step:
        run.steps += 1
        if run.steps > run.step_limit:
            raise StepLimitError(run.step_limit)
        state = await run_step(run, graph, step, state, path)
        routes = successors(graph, state, step)
        if run.hub.active:
            _transitions(run.hub, routes, path)
        step = tuple(dict.fromkeys(t for targets in routes.values() for t in targets))
    return state


async def _all(
    awaitables: Sequence[Awaitable[Mapping[str, Any]]],
    on_done: Callable[[int, Mapping[str, Any]], Awaitable[None]] | None = None,
) -> list[Mapping[str, Any]]:
    """Await sibling nodes; the first failure cancels the others and is raised once they end.

    `on_done(index, result)` is awaited for each success as it comes, in schedule order among
    those finishing together.
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        remaining = set(tasks)
        failed = False
        while remaining and not failed:
            done, remaining = await asyncio.wait(remaining, return_when=asyncio.FIRST_COMPLETED)
            for index, task in enumerate(tasks):
                if task not in done:
                    continue
                if task.exception() is not None:
                    failed = True
                elif on_done is not None:
                    await on_done(index, task.result())
    finally:
        for task in tasks:
            task.cancel()  # a no-op for finished tasks; ends the others when we are cancelled
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]

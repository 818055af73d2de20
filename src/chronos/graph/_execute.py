"""The run loop: execute the steps the planner chooses, checkpoint after each, stream it all.

Per step: run the step's nodes (one inline; several as sibling tasks), merge their updates
through the reducers, ask `_plan` what runs next, write a checkpoint naming it, then move on.
Events are only built when someone listens (`hub.active`), so an unobserved run without a
store pays for little more than the node calls themselves; they are numbered all the same.

A subgraph that is the only node of its step is "tracked": its steps are checkpointed like the
parent's (with the subgraph path), and an interrupt node inside it pauses the whole run. A
resume then continues inside the subgraph and, once it ends, finishes the subgraph's node in
each enclosing graph. A subgraph running beside other nodes has no state of its own to
record, so it runs as one unit of its parent's step and may not reach an interrupt node.
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
    graph_at,
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
    the number of the run's last event; times are seconds since the epoch. `path` names the
    subgraph nodes enclosing `node_id` and `next` (a pause inside a subgraph), outermost first.
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
    path: tuple[str, ...] = ()


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

    __slots__ = ("checkpoint_id", "current", "graph", "hub", "node_id", "path", "pending",
                 "run_id", "session_id", "stable", "started_at", "state", "step_limit", "step_no",
                 "steps", "store")

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
        self.path = parent.path if parent is not None else ()  # the subgraph `current` is in
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
            checkpoint_id=self.checkpoint_id, path=self.path,
        )


class _Paused(Exception):
    """A tracked graph reached an interrupt node: the whole run pauses before `step`."""

    def __init__(self, path: tuple[str, ...], step: tuple[str, ...]) -> None:
        super().__init__(path, step)
        self.path = path
        self.step = step


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
    path = run.path
    state = base = run.state
    graph = graph_at(run.graph, path)
    if write_first and run.store is not None:
        await _checkpoint(run, state, (), step, _status(graph, step, skip_interrupt=resumed),
                          pending=run.pending, path=path)
    try:
        state = await _drive(run, graph, path, step, state, skip_interrupt=resumed, tracked=True)
        while path:  # resumed inside a subgraph that has now ended: finish its node above
            path, node_id = path[:-1], path[-1]
            graph = graph_at(run.graph, path)
            update = normalize_update(node_id, state, base, state)
            if run.hub.active:
                run.hub.publish("node_end", node_id, state=MappingProxyType(state),
                                data=MappingProxyType(dict(update)), path=path)
            else:
                run.hub.skip()
            nxt = await _advance(run, graph, path, (node_id,), state, tracked=True)
            state = await _drive(run, graph, path, nxt, state, skip_interrupt=True, tracked=True)
    except _Paused as paused:
        return _finish(run, "paused", paused.step, paused.path)
    return _finish(run, "completed", ())


async def _drive(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    step: tuple[str, ...],
    state: State,
    *,
    skip_interrupt: bool,
    tracked: bool,
) -> State:
    """Run `graph` (the subgraph at `path`, or the run's graph) from `step` to its end.

    Returns the graph's final state. A tracked graph raises `_Paused` at an interrupt node
    (`skip_interrupt` lets the first step run: a resume executes the interrupt node).
    """
    if not skip_interrupt and graph.has_interrupts and interrupts_in(graph, step):
        await _pause_before(run, graph, path, step, state, tracked=tracked)
    while step:
        run.steps += 1
        if run.steps > run.step_limit:
            raise StepLimitError(run.step_limit)
        run.node_id = step[0]
        state = await run_step(run, graph, step, state, path, tracked=tracked)
        step = await _advance(run, graph, path, step, state, tracked=tracked)
    return state


async def _advance(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    ran: tuple[str, ...],
    state: State,
    *,
    tracked: bool,
) -> tuple[str, ...]:
    """After a step: announce the edges taken, checkpoint, and return the next step."""
    hub = run.hub
    if len(ran) == 1:
        nxt = next_nodes(graph, state, ran)
        _transitions(hub, {ran[0]: nxt}, path)
    else:
        routes = successors(graph, state, ran)
        nxt = tuple(dict.fromkeys(t for targets in routes.values() for t in targets))
        _transitions(hub, routes, path)
    if not tracked:
        if graph.has_interrupts and interrupts_in(graph, nxt):
            await _pause_before(run, graph, path, nxt, state, tracked=False)
        return nxt
    run.state = state
    status = _status(graph, nxt, skip_interrupt=False)
    # A subgraph's last step needs no checkpoint of its own: its parent's step ends with one.
    if run.store is not None and (nxt or not path):
        await _checkpoint(run, state, ran, nxt, status, path=path)
    run.stable, run.current, run.path, run.pending = state, nxt, path, {}
    if status == "paused":
        raise _Paused(path, nxt)
    return nxt


async def _pause_before(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    step: tuple[str, ...],
    state: State,
    *,
    tracked: bool,
) -> None:
    """Pause the run before `step`, which holds an interrupt node (raises `_Paused`)."""
    if not tracked:
        raise GraphError(
            f"subgraph {path[-1]!r} reached interrupt node {interrupts_in(graph, step)[0]!r} "
            f"while running beside other nodes of its parent's step; a subgraph with interrupt "
            f"nodes must be the only node of its step"
        )
    if path:  # entering a subgraph: a run's own first step was checkpointed when it started
        run.state = state
        if run.store is not None:
            await _checkpoint(run, state, (), step, "paused", path=path)
        run.stable, run.current, run.path, run.pending = state, step, path, {}
    raise _Paused(path, step)


def _status(graph: CompiledGraph, step: tuple[str, ...], *, skip_interrupt: bool) -> (
    CheckpointStatus
):
    if not step:
        return "completed"
    if not skip_interrupt and graph.has_interrupts and interrupts_in(graph, step):
        return "paused"
    return "running"


def _finish(
    run: Run, status: CheckpointStatus, nxt: tuple[str, ...], path: tuple[str, ...] = ()
) -> RunState:
    if status == "paused":
        run.node_id = interrupts_in(graph_at(run.graph, path), nxt)[0]
        run.hub.end("interrupt", run.node_id, state=run.state, data=list(nxt), path=path)
        return run.result("paused", nxt)
    run.hub.end("completed", run.node_id, state=run.state)
    return run.result("completed")


def _transitions(hub: EventHub, routes: Mapping[str, tuple[str, ...]], path: tuple[str, ...]) -> (
    None
):
    if not hub.active:
        hub.skip(sum(len(targets) or 1 for targets in routes.values()))
        return
    for source, targets in routes.items():
        for target in targets or (END,):
            hub.publish("edge_transition", source, data={"from": source, "to": target},
                        path=path)


async def _checkpoint(
    run: Run, state: State, ran: tuple[str, ...], nxt: tuple[str, ...], status: CheckpointStatus,
    error: str = "", pending: Mapping[str, Mapping[str, Any]] | None = None,
    path: tuple[str, ...] = (),
) -> None:
    assert run.store is not None
    checkpoint = Checkpoint(
        id=new_id(), session_id=run.session_id, run_id=run.run_id, graph_id=run.graph.id,
        step=run.step_no, status=status, ran=ran, next=nxt, state=state,
        parent_id=run.checkpoint_id, created_at=time.time(), error=error,
        pending=dict(pending) if pending else {}, path=path,
    )
    await run.store.put(checkpoint)
    run.checkpoint_id = checkpoint.id
    run.step_no += 1
    if run.hub.active:
        run.hub.publish("checkpoint", ran[-1] if ran else "", data=checkpoint.id, path=path)
    else:
        run.hub.skip()


async def _record_failure(run: Run, exc: Exception) -> None:
    """A `failed` checkpoint: the last good state, and the step to retry on resume."""
    # The original error matters more than a failure to record it.
    with contextlib.suppress(Exception):
        await _checkpoint(run, run.stable, (), run.current, "failed", error=str(exc),
                          pending=run.pending, path=run.path)


async def run_step(
    run: Run,
    graph: CompiledGraph,
    step: tuple[str, ...],
    state: State,
    path: tuple[str, ...],
    *,
    tracked: bool,
) -> State:
    """Run one step's nodes on `state` and return the merged new state.

    In a tracked graph with a store, each branch of a parallel step is checkpointed as it
    finishes (its update in `pending`), and branches a resumed checkpoint lists as finished
    do not run again. Only a step's single node is tracked in turn (if it is a subgraph).
    """
    record = tracked and run.store is not None
    updates: Sequence[Mapping[str, Any]]
    if len(step) == 1 and not (record and run.pending):
        updates = (await _run_node(run, graph.nodes[step[0]], state, path, tracked=tracked),)
    else:
        done = run.pending if record else {}
        todo = [n for n in step if n not in done]

        async def finished(index: int, update: Mapping[str, Any]) -> None:
            done[todo[index]] = update
            await _checkpoint(run, state, (todo[index],), step, "running", pending=done,
                              path=path)

        results = await _all(
            [_run_node(run, graph.nodes[n], state, path, tracked=False) for n in todo],
            on_done=finished if record else None,
        )
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
    else:
        hub.skip(len(step))
    return new


async def _run_node(
    run: Run, spec: NodeSpec, state: State, path: tuple[str, ...], *, tracked: bool
) -> Mapping[str, Any]:
    hub = run.hub
    node_id = spec.id
    if hub.active:
        hub.publish("node_start", node_id, path=path)
    else:
        hub.skip()
    given = dict(state)  # the node may change its copy freely; the run's state stays as it was
    token = CURRENT_NODE.set((node_id, path))
    try:
        if spec.subgraph is not None:
            sub = spec.subgraph
            final = await _drive(run, sub, (*path, node_id), entry_nodes(sub, given), given,
                                 skip_interrupt=False, tracked=tracked)
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
    except (GraphError, _Paused):
        raise
    except Exception as exc:
        raise NodeError(f"node {node_id!r} failed: {exc!r}", node_id=node_id,
                        run_id=run.run_id) from exc
    finally:
        CURRENT_NODE.reset(token)


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

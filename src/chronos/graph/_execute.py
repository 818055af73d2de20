"""The run loop: execute the steps the planner chooses, checkpoint after each, stream it all.

Per step: run the step's nodes (one inline; several as sibling tasks), merge their updates
through the reducers, ask `_plan` what runs next, write a checkpoint naming it, then move on.
Events are only built when someone listens (`hub.observed()`), so an unobserved run without a
store pays for little more than the node calls themselves; they are numbered all the same.

A subgraph that is the only node of its step is "tracked": its steps are checkpointed like the
parent's (with the subgraph path), and an interrupt node inside it pauses the whole run. A
resume then continues inside the subgraph and, once it ends, finishes the subgraph's node in
each enclosing graph. A subgraph running beside other nodes has no state of its own to
record, so it runs as one unit of its parent's step (see below).

A node that calls `graph.interrupt()` without an answer ends its task early: the other tasks
of the step still finish (their updates kept in `pending`), then the run pauses with every
question of the step in one "paused" checkpoint, to run the unanswered tasks again on resume.
A subgraph running beside other nodes is one such task: its questions (`task` named
`"sub/inner"`, the subgraph's task then the asking node's) are reported with the step's
others, and on resume it runs again from its entry, its nodes' answers replayed. Its static
interrupt points (an interrupt node, a node that pauses after it ran) pause it the same way,
as questions without a value (`Interrupt.point`); a resume records them as passed, so the
run goes on past them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal, cast

from chronos.errors import GraphError, NodeError, StepLimitError
from chronos.graph._builder import CompiledGraph
from chronos.graph._command import Send
from chronos.graph._events import CURRENT_NODE, Emitter, EventHub
from chronos.graph._interrupt import Interrupt, new_interrupt_id, point_key
from chronos.graph._node import Interrupted, call_function
from chronos.graph._persist import checkpoint as _checkpoint
from chronos.graph._persist import record_failure as _record_failure
from chronos.graph._persist import settle as _settle
from chronos.graph._plan import (
    Replace,
    Routed,
    Step,
    Task,
    apply_updates,
    check_targets,
    entry_nodes,
    graph_at,
    interrupts_in,
    merge_targets,
    next_nodes,
    node_ids,
    normalize_update,
    successors,
    task_keys,
)
from chronos.graph._run import Run, RunState
from chronos.graph._types import END, State
from chronos.graph._usage import recording
from chronos.store import CheckpointStatus

__all__ = ["execute", "run_step"]

# The task keys of the untracked subgraphs enclosing this context, each ending in "/": how
# their nodes' questions and answers are named in the parent's step.
_TASK_PREFIX: ContextVar[str] = ContextVar("chronos_graph_task_prefix", default="")


class _Asked:
    """A subgraph task beside others whose nodes asked questions: the task's result."""

    __slots__ = ("interrupts",)

    def __init__(self, interrupts: tuple[Interrupt, ...]) -> None:
        self.interrupts = interrupts


class _SubgraphAsked(Exception):
    """Nodes of an untracked subgraph asked questions: it ends, and its task with `_Asked`."""

    def __init__(self, interrupts: tuple[Interrupt, ...]) -> None:
        super().__init__(interrupts)
        self.interrupts = interrupts


_Result = Mapping[str, Any] | Interrupted | _Asked  # what a task ends with


class _Paused(Exception):
    """A tracked graph pauses: before an interrupt node in `step`, or on `interrupts`."""

    def __init__(
        self, path: tuple[str, ...], step: Step, interrupts: tuple[Interrupt, ...] = ()
    ) -> None:
        super().__init__(path, step)
        self.path = path
        self.step = step
        self.interrupts = interrupts


async def execute(run: Run, step: Step, *, resumed: bool, write_first: bool) -> RunState:
    """Run from `step` until the graph completes or pauses; record a failure before raising."""
    run.current = step
    # One hub and one usage ledger per run; each node sets its own CURRENT_NODE, which says
    # who emits and who spends.
    node = CURRENT_NODE.set(Emitter(run.hub, "", ()))
    try:
        with recording(run.usage):
            return await _loop(run, step, resumed=resumed, write_first=write_first)
    except asyncio.CancelledError:
        # No checkpoint here: the last one written stays the one to resume from.
        await _settle(run)
        run.hub.end("cancelled", run.node_id, state=run.stable, error="cancelled")
        raise
    except Exception as exc:
        if run.store is not None:
            await _record_failure(run, exc)
        run.hub.end("error", run.node_id, state=run.stable, error=str(exc))
        raise
    finally:
        CURRENT_NODE.reset(node)


async def _loop(run: Run, step: Step, *, resumed: bool, write_first: bool) -> RunState:
    path = run.path
    state = base = run.state
    graph = graph_at(run.graph, path)
    if write_first and run.store is not None:
        await _checkpoint(run, state, (), step, _status(graph, step, skip_interrupt=resumed),
                          pending=run.pending, path=path)
    _values(run.hub, "", state, path)
    try:
        state = await _drive(run, graph, path, step, state, skip_interrupt=resumed, tracked=True)
        while path:  # resumed inside a subgraph that has now ended: finish its node above
            path, node_id = path[:-1], path[-1]
            graph = graph_at(run.graph, path)
            update = normalize_update(node_id, state, base, state)
            if run.hub.observed():
                run.hub.publish("node_end", node_id, state=MappingProxyType(state),
                                data=MappingProxyType(dict(update)), path=path)
            nxt = await _advance(run, graph, path, (node_id,), state, tracked=True)
            state = await _drive(run, graph, path, nxt, state, skip_interrupt=True, tracked=True)
    except _Paused as paused:
        await _settle(run, raise_errors=True)
        return _finish(run, "paused", paused.step, paused.path, paused.interrupts)
    await _settle(run, raise_errors=True)
    return _finish(run, "completed", ())


async def _drive(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    step: Step,
    state: State,
    *,
    skip_interrupt: bool,
    tracked: bool,
) -> State:
    """Run `graph` (the subgraph at `path`, or the run's graph) from `step` to its end.

    Returns the graph's final state. A tracked graph raises `_Paused` at an interrupt node
    (`skip_interrupt` lets the first step run: a resume executes the interrupt node) and when
    a node calls `interrupt()`.
    """
    if not skip_interrupt and graph.has_interrupts and interrupts_in(graph, step):
        await _pause_before(run, graph, path, step, state, tracked=tracked)
    while step:
        run.steps += 1
        if run.steps > run.step_limit:
            raise StepLimitError(run.step_limit)
        first = step[0]
        run.node_id = first if type(first) is str else first.node  # type: ignore[union-attr]
        state = await run_step(run, graph, step, state, path, tracked=tracked)
        step = await _advance(run, graph, path, step, state, tracked=tracked)
    return state


async def _advance(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    ran: Step,
    state: State,
    *,
    tracked: bool,
) -> Step:
    """After a step: announce the edges taken, checkpoint, and return the next step."""
    hub = run.hub
    plain = len(ran) == 1 and type(ran[0]) is str
    names: tuple[str, ...] = ran if plain else node_ids(ran)  # type: ignore[assignment]
    if plain and not run.gotos:
        nxt = next_nodes(graph, state, names)
        _transitions(hub, {names[0]: nxt}, path)
    else:
        routes = successors(graph, state, names)
        for source, goto in run.gotos:
            routes[source] = (*routes[source], *check_targets(graph, goto, source))
        run.gotos = []
        nxt = merge_targets(routes.values())
        _transitions(hub, routes, path)
    if not tracked:
        if graph.has_interrupts:
            if _pauses_after(graph, names):
                _ask_at_points(run, graph, path, ran, "after")
            if interrupts_in(graph, nxt):
                await _pause_before(run, graph, path, nxt, state, tracked=False)
        return nxt
    if run.answers:  # answered tasks finished with the tracked step (untracked ones inside it)
        run.answers = {}
    run.state = state
    status = _status(graph, nxt, skip_interrupt=False)
    if status == "running" and graph.has_interrupts and _pauses_after(graph, names):
        status = "paused"
    # A subgraph's last step needs no checkpoint of its own: its parent's step ends with one.
    if run.store is not None and (nxt or not path):
        await _checkpoint(run, state, names, nxt, status, path=path)
    run.stable, run.current, run.path, run.pending, run.asked = state, nxt, path, {}, ()
    if status == "paused":
        raise _Paused(path, nxt)
    return nxt


async def _pause_before(
    run: Run,
    graph: CompiledGraph,
    path: tuple[str, ...],
    step: Step,
    state: State,
    *,
    tracked: bool,
) -> None:
    """Pause the run before `step`, which holds an interrupt node (raises `_Paused`).

    In an untracked subgraph, raise `_SubgraphAsked` unless a resume passed those points.
    """
    if not tracked:
        _ask_at_points(run, graph, path, step, "before")
        return
    if path:  # entering a subgraph: a run's own first step was checkpointed when it started
        run.state = state
        if run.store is not None:
            await _checkpoint(run, state, (), step, "paused", path=path)
        run.stable, run.current, run.path, run.pending = state, step, path, {}
    raise _Paused(path, step)


async def _pause_inside(
    run: Run,
    step: Step,
    keys: tuple[str, ...],
    results: Sequence[_Result],
    state: State,
    path: tuple[str, ...],
    *,
    tracked: bool,
) -> None:
    """Tasks of `step` called `interrupt()`: checkpoint their questions, raise `_Paused`.

    In an untracked subgraph, raise `_SubgraphAsked` with them instead: the step of the
    tracked graph above pauses on them, beside its own tasks' questions.
    """
    names = node_ids(step)
    prefix = _TASK_PREFIX.get()
    earlier = {(i.task, i.index): i.id for i in run.asked}
    asked: list[Interrupt] = []
    pending = dict(run.pending)
    for key, node_id, result in zip(keys, names, results, strict=True):
        if type(result) is Interrupted:
            task = prefix + key
            asked.append(Interrupt(
                id=earlier.get((task, result.index)) or new_interrupt_id(), value=result.value,
                node_id=node_id, task=task, index=result.index, path=path,
            ))
        elif type(result) is _Asked:
            asked.extend(result.interrupts)
        else:
            pending[key] = result  # type: ignore[assignment]
    interrupts = tuple(asked)
    if not tracked:
        raise _SubgraphAsked(interrupts)
    run.state, run.stable, run.current, run.path, run.pending = state, state, step, path, pending
    run.asked = interrupts
    run.node_id = interrupts[0].node_id
    if run.store is not None:
        await _checkpoint(run, state, (), step, "paused", pending=pending, path=path,
                          interrupts=interrupts)
    raise _Paused(path, step, interrupts)


def _ask_at_points(
    run: Run, graph: CompiledGraph, path: tuple[str, ...], step: Step,
    point: Literal["before", "after"],
) -> None:
    """An untracked subgraph reached static interrupt points of `step`'s tasks, before they
    run or after: raise `_SubgraphAsked` with those that no resume has passed yet."""
    nodes = graph.nodes
    prefix = _TASK_PREFIX.get()
    asked = []
    for task, key in zip(step, task_keys(step), strict=True):
        node_id = task if type(task) is str else cast(Send, task).node
        spec = nodes[node_id]
        full = prefix + key
        if (spec.interrupt if point == "before" else spec.pause_after) and (
                point_key(full, point) not in run.answers):
            asked.append(Interrupt(id=new_interrupt_id(), value=None, node_id=node_id,
                                   task=full, index=0, path=path, point=point))
    if asked:
        raise _SubgraphAsked(tuple(asked))


def _pauses_after(graph: CompiledGraph, ran: tuple[str, ...]) -> bool:
    nodes = graph.nodes
    return any(nodes[n].pause_after for n in ran)


def _status(graph: CompiledGraph, step: Step, *, skip_interrupt: bool) -> CheckpointStatus:
    if not step:
        return "completed"
    if not skip_interrupt and graph.has_interrupts and interrupts_in(graph, step):
        return "paused"
    return "running"


def _finish(
    run: Run, status: CheckpointStatus, nxt: Step, path: tuple[str, ...] = (),
    interrupts: tuple[Interrupt, ...] = (),
) -> RunState:
    if status == "paused":
        if interrupts:
            run.hub.end("interrupt", run.node_id, state=run.state, data=interrupts, path=path)
            return run.result("paused", nxt, interrupts)
        before = interrupts_in(graph_at(run.graph, path), nxt)
        run.node_id = before[0] if before else run.node_id  # else paused after `node_id`
        run.hub.end("interrupt", run.node_id, state=run.state, data=list(node_ids(nxt)),
                    path=path)
        return run.result("paused", nxt)
    run.hub.end("completed", run.node_id, state=run.state)
    return run.result("completed")


def _transitions(hub: EventHub, routes: Mapping[str, Step], path: tuple[str, ...]) -> None:
    if not hub.observed(sum(len(targets) or 1 for targets in routes.values())):
        return
    for source, targets in routes.items():
        for target in targets or (END,):
            if type(target) is str:
                data: dict[str, Any] = {"from": source, "to": target}
            else:
                send = cast(Send, target)
                data = {"from": source, "to": send.node, "send": send.arg}
            hub.publish("edge_transition", source, data=data, path=path)


def _values(hub: EventHub, node_id: str, state: State, path: tuple[str, ...]) -> None:
    """The whole state for "values" readers: a view, numbered as the event it follows."""
    if hub.wants("values"):
        hub.publish_view("values", node_id, state=state, path=path)


async def run_step(
    run: Run,
    graph: CompiledGraph,
    step: Step,
    state: State,
    path: tuple[str, ...],
    *,
    tracked: bool,
) -> State:
    """Run one step's tasks on `state` and return the merged new state.

    In a tracked graph with a store, each task of a parallel step is checkpointed as it
    finishes (its update in `pending`), and tasks a resumed checkpoint lists as finished
    do not run again. Only a step's single node is tracked in turn (if it is a subgraph).
    Raises `_Paused` once every task ended if any of them called `interrupt()`.
    """
    record = tracked and run.store is not None
    updates: Sequence[Mapping[str, Any]]
    if len(step) == 1 and type(step[0]) is str and not (record and run.pending):
        names: tuple[str, ...] = step  # type: ignore[assignment]
        result = await _run_node(run, graph, names[0], names[0], state, path, tracked=tracked)
        if type(result) is Interrupted or type(result) is _Asked:
            await _pause_inside(run, step, names, (result,), state, path, tracked=tracked)
        updates = (result,)  # type: ignore[assignment]
        if type(result) is Routed:
            run.gotos.append((names[0], result.goto))
    else:
        names = node_ids(step)
        updates = await _run_tasks(run, graph, step, names, state, path, tracked=tracked,
                                   record=record)
    try:
        new = apply_updates(graph, state, updates)
    except Exception as exc:
        raise NodeError(f"merging the updates of {list(names)} failed: {exc!r}",
                        node_id=run.node_id, run_id=run.run_id) from exc
    hub = run.hub
    if hub.observed(len(step)):
        snapshot = MappingProxyType(new)
        for node_id, update in zip(names, updates, strict=True):
            hub.publish("node_end", node_id, state=snapshot,
                        data=MappingProxyType(dict(update)), path=path)
        _values(hub, names[-1], new, path)
    return new


async def _run_tasks(
    run: Run,
    graph: CompiledGraph,
    step: Step,
    names: tuple[str, ...],
    state: State,
    path: tuple[str, ...],
    *,
    tracked: bool,
    record: bool,
) -> Sequence[Mapping[str, Any]]:
    """Run a step's tasks side by side; their updates in step order (see `run_step`)."""
    keys = task_keys(step)
    done = run.pending if record else {}
    todo = [i for i, key in enumerate(keys) if key not in done]

    async def finished(batch: list[tuple[int, _Result]]) -> None:
        ran = []
        for index, result in batch:
            if type(result) is not Interrupted and type(result) is not _Asked:
                done[keys[todo[index]]] = result  # type: ignore[assignment]
                ran.append(names[todo[index]])
        if ran:
            await _checkpoint(run, state, tuple(ran), step, "running", pending=done, path=path)

    fresh = await _all(
        [_run_node(run, graph, step[i], keys[i], state, path, tracked=False) for i in todo],
        on_done=finished if record else None,
    )
    by_key = dict(zip((keys[i] for i in todo), fresh, strict=True))
    results = [by_key[key] if key in by_key else done[key] for key in keys]
    if any(type(r) is Interrupted or type(r) is _Asked for r in results):
        await _pause_inside(run, step, keys, results, state, path, tracked=tracked)
    for node_id, update in zip(names, results, strict=True):
        if type(update) is Routed:
            run.gotos.append((node_id, update.goto))
    return results  # type: ignore[return-value]


async def _run_node(
    run: Run, graph: CompiledGraph, task: Task, key: str, state: State,
    path: tuple[str, ...], *, tracked: bool,
) -> _Result:
    hub = run.hub
    arg: Mapping[str, Any]
    if type(task) is str:
        spec, arg = graph.nodes[task], state
    else:
        send = cast(Send, task)
        spec, arg = graph.nodes[send.node], send.arg
    node_id = spec.id
    if hub.observed():
        hub.publish("node_start", node_id, path=path)
    token = CURRENT_NODE.set(Emitter(hub, node_id, path))
    try:
        if spec.subgraph is None:
            answers = run.answers.get(_TASK_PREFIX.get() + key, ()) if run.answers else ()
            return await call_function(hub, spec, arg, answers, path, run.trace)
        return await _run_subgraph(run, spec.subgraph, node_id, key, arg, path, tracked=tracked)
    except _SubgraphAsked as asked:
        return _Asked(asked.interrupts)
    except (GraphError, _Paused):
        raise
    except Exception as exc:
        raise NodeError(f"node {node_id!r} failed: {exc!r}", node_id=node_id,
                        run_id=run.run_id) from exc
    finally:
        CURRENT_NODE.reset(token)


async def _run_subgraph(
    run: Run, sub: CompiledGraph, node_id: str, key: str, arg: Mapping[str, Any],
    path: tuple[str, ...], *, tracked: bool,
) -> Mapping[str, Any]:
    """A subgraph node: its graph run to its end (or pause); one span holds its nodes' spans.

    Run beside other nodes (untracked), its tasks are keyed under this node's task, so that
    its questions and their answers are told apart from its siblings'.
    """
    span = None if run.trace is None else run.trace.attempt(node_id, 1, path)
    error: BaseException | None = None
    given = dict(arg)
    inner = None if tracked else _TASK_PREFIX.set(f"{_TASK_PREFIX.get()}{key}/")
    try:
        final = await _drive(run, sub, (*path, node_id), entry_nodes(sub, given), given,
                             skip_interrupt=False, tracked=tracked)
        return Replace(normalize_update(node_id, final, arg, final))
    except (_Paused, _SubgraphAsked):
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        if inner is not None:
            _TASK_PREFIX.reset(inner)
        if span is not None:
            span.end(error)


async def _all(
    coroutines: Sequence[Coroutine[Any, Any, _Result]],
    on_done: Callable[[list[tuple[int, _Result]]], Awaitable[None]] | None = None,
) -> list[_Result]:
    """Await sibling nodes; the first failure cancels the others and is raised once they end.

    `on_done([(index, result), ...])` is awaited once for each batch of successes that
    finish together, in schedule order: one checkpoint per batch, not one per branch, keeps
    a wide fan-out from writing its growing list of finished branches once per branch.
    """
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(c) for c in coroutines]
    index_of = {task: index for index, task in enumerate(tasks)}
    # Without `on_done` nothing needs the batches: one wait, woken by a failure or the end.
    when = asyncio.FIRST_COMPLETED if on_done is not None else asyncio.FIRST_EXCEPTION
    try:
        remaining: set[asyncio.Task[_Result]] = set(tasks)
        failed = False
        while remaining and not failed:
            done, remaining = await asyncio.wait(remaining, return_when=when)
            if on_done is None:
                failed = any(task.exception() is not None for task in done)
                continue
            batch: list[tuple[int, _Result]] = []
            for task in sorted(done, key=index_of.__getitem__):
                if task.exception() is not None:
                    failed = True
                else:
                    batch.append((index_of[task], task.result()))
            if batch:
                await on_done(batch)
    finally:
        # Ends the unfinished ones after a failure, or when we are cancelled.
        unfinished = [task for task in tasks if not task.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]

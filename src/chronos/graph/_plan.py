"""The step planner: pure functions from (graph, state, what just ran) to what happens next.

No I/O and no clock here, so the rules of a run (how updates merge, where edges lead, when a
run pauses) can be read and tested without an event loop. `_runner.py` is the loop around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chronos.errors import GraphError, NodeError, RouterError
from chronos.graph._builder import Branch, CompiledGraph
from chronos.graph._types import END, State

__all__ = [
    "Replace",
    "apply_updates",
    "entry_nodes",
    "graph_at",
    "interrupts_in",
    "next_nodes",
    "normalize_update",
    "successors",
]


class Replace(dict[str, Any]):
    """An update applied without reducers: a subgraph's outputs are already reduced."""


def normalize_update(node_id: str, given: State, state: Mapping[str, Any], result: Any) -> (
    Mapping[str, Any]
):
    """Turn what a node returned into the keys it changed.

    A node may return a partial update, None, or the very dict it was given (the guide's
    `s["response"] = ...; return s`); in that last case only keys whose value is a new object
    count as changed, so append-reducers do not append the whole list to itself.
    """
    if result is None:
        return {}
    if result is given:
        missing = object()
        return {k: v for k, v in given.items() if state.get(k, missing) is not v}
    if not isinstance(result, Mapping):
        raise TypeError(
            f"node {node_id!r} returned {type(result).__name__}; return a dict of updates or None"
        )
    return result


def apply_updates(
    graph: CompiledGraph, state: Mapping[str, Any], updates: Sequence[Mapping[str, Any]]
) -> State:
    """A new state: `updates` applied in order, each key through its reducer.

    The given state is never mutated, so snapshots handed out earlier stay valid.
    """
    new = dict(state)
    reducers = graph.reducers
    for update in updates:
        if type(update) is Replace:
            new.update(update)
            continue
        for key, value in update.items():
            reducer = reducers.get(key)
            new[key] = value if reducer is None else reducer(new.get(key), value)
    return new


def entry_nodes(graph: CompiledGraph, state: Mapping[str, Any]) -> tuple[str, ...]:
    """The first step of a run."""
    if graph.entry_branch is not None:
        return _route(graph, graph.entry_branch, state, "__start__")
    return graph.entry


def next_nodes(graph: CompiledGraph, state: Mapping[str, Any], ran: Sequence[str]) -> tuple[
    str, ...
]:
    """The next step after the nodes in `ran` finished and their updates were applied.

    Successors keep the order they were scheduled in and appear once, however many branches
    lead to them; an empty tuple means the run is complete.
    """
    if len(ran) == 1:  # the common linear case, kept free of allocations
        static = graph.edges.get(ran[0])
        if static is not None:
            return static
    step: dict[str, None] = {}
    for targets in successors(graph, state, ran).values():
        step.update(dict.fromkeys(targets))
    return tuple(step)


def successors(
    graph: CompiledGraph, state: Mapping[str, Any], ran: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Where each node of `ran` leads (END left out), routers evaluated on `state`."""
    out: dict[str, tuple[str, ...]] = {}
    for node_id in ran:
        targets = graph.edges.get(node_id)
        if targets is None:
            targets = _route(graph, graph.branches[node_id], state, node_id)
        out[node_id] = targets
    return out


def interrupts_in(graph: CompiledGraph, step: Sequence[str]) -> tuple[str, ...]:
    """The interrupt nodes of a step: if any, the run pauses before the step."""
    nodes = graph.nodes
    return tuple(n for n in step if nodes[n].interrupt)


def graph_at(graph: CompiledGraph, path: Sequence[str]) -> CompiledGraph:
    """The subgraph at `path` (subgraph node ids, outermost first); `graph` itself if empty.

    Raises:
        GraphError: a node on the path is not a subgraph node (a checkpoint of another graph).
    """
    for node_id in path:
        spec = graph.nodes.get(node_id)
        if spec is None or spec.subgraph is None:
            raise GraphError(f"graph {graph.id!r} has no subgraph node {node_id!r} "
                             f"(subgraph path {list(path)})")
        graph = spec.subgraph
    return graph


def _route(
    graph: CompiledGraph, branch: Branch, state: Mapping[str, Any], source: str
) -> tuple[str, ...]:
    try:
        answer = branch.router(dict(state))
    except Exception as exc:
        raise NodeError(f"router of {source!r} failed: {exc!r}", node_id=source) from exc
    if isinstance(answer, str):
        answers: tuple[Any, ...] = (answer,)
    elif isinstance(answer, list | tuple):
        answers = tuple(answer)
    else:
        raise _router_error(branch, source, answer, "expected a node id or a list of them")
    targets: list[str] = []
    for name in answers:
        if not isinstance(name, str):
            raise _router_error(branch, source, answer, f"{name!r} is not a node id")
        target = name if branch.targets is None else branch.targets.get(name)
        if target is None or (target != END and target not in graph.nodes):
            raise _router_error(branch, source, answer, f"no node {name!r} to route to")
        if target != END and target not in targets:
            targets.append(target)
    return tuple(targets)


def _router_error(branch: Branch, source: str, answer: Any, reason: str) -> RouterError:
    router = getattr(branch.router, "__name__", type(branch.router).__name__)
    return RouterError(node_id=source, router=router, returned=repr(answer)[:200], reason=reason)

"""The step planner: pure functions from (graph, state, what just ran) to what happens next.

No I/O and no clock here, so the rules of a run (how updates merge, where edges lead, when a
run pauses) can be read and tested without an event loop. `_execute.py` is the run loop that
calls it step by step; `_runner.py` (the public `Runner`) only starts, resumes and inspects
runs, and uses it to apply an update or a `goto` to a stored checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chronos.errors import GraphError, NodeError, RouterError
from chronos.graph._builder import Branch, CompiledGraph
from chronos.graph._command import Command, Send, goto_targets
from chronos.graph._types import END, State

__all__ = [
    "Replace",
    "Routed",
    "Step",
    "Task",
    "apply_updates",
    "check_targets",
    "entry_nodes",
    "graph_at",
    "interrupts_in",
    "merge_targets",
    "next_nodes",
    "node_ids",
    "normalize_update",
    "successors",
    "task_keys",
]

Task = str | Send
"""What a step runs: a node on the graph's state, or a `Send`'s node on its own input."""

Step = tuple[Task, ...]
"""A step's tasks: its plain nodes first, then its `Send`s, each group in scheduled order."""


class Replace(dict[str, Any]):
    """An update applied without reducers: a subgraph's outputs are already reduced."""


class Routed(dict[str, Any]):
    """A node's update that came in a `Command` with a `goto`: where the node sends the run."""

    __slots__ = ("goto",)

    def __init__(self, update: Mapping[str, Any], goto: Step) -> None:
        super().__init__(update)
        self.goto = goto


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
    if type(result) is Command:
        update = normalize_update(node_id, given, state, result.update)
        goto = goto_targets(result.goto)
        return Routed(update, goto) if goto else update
    if result is given:
        missing = object()
        return {k: v for k, v in given.items() if state.get(k, missing) is not v}
    if not isinstance(result, Mapping):
        raise TypeError(f"node {node_id!r} returned {type(result).__name__}; return a dict of "
                        f"updates, a graph.Command or None")
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


def entry_nodes(graph: CompiledGraph, state: Mapping[str, Any]) -> Step:
    """The first step of a run."""
    if graph.entry_branch is not None:
        return _route(graph, graph.entry_branch, state, "__start__")
    return graph.entry


def next_nodes(graph: CompiledGraph, state: Mapping[str, Any], ran: Sequence[str]) -> Step:
    """The next step after the nodes in `ran` finished and their updates were applied.

    Successors keep the order they were scheduled in and appear once, however many branches
    lead to them (each `Send` is its own task, after the plain nodes); an empty tuple means
    the run is complete.
    """
    if len(ran) == 1:  # the common linear case, kept free of allocations
        static = graph.edges.get(ran[0])
        if static is not None:
            return static
    return merge_targets(successors(graph, state, ran).values())


def merge_targets(groups: Iterable[Sequence[Task]]) -> Step:
    """One step from several lists of targets: nodes once each, then every `Send`, in order."""
    nodes: dict[str, None] = {}
    sends: list[Send] = []
    for targets in groups:
        for target in targets:
            if type(target) is str:
                nodes[target] = None
            else:
                sends.append(target)  # type: ignore[arg-type]
    return (*nodes, *sends)


def successors(
    graph: CompiledGraph, state: Mapping[str, Any], ran: Sequence[str]
) -> dict[str, Step]:
    """Where each node of `ran` leads (END left out), routers evaluated on `state`.

    A node with neither edges nor a router (it routes with `Command(goto=...)`) leads nowhere.
    """
    out: dict[str, Step] = {}
    for node_id in ran:
        targets: Step | None = graph.edges.get(node_id)
        if targets is None:
            branch = graph.branches.get(node_id)
            targets = () if branch is None else _route(graph, branch, state, node_id)
        out[node_id] = targets
    return out


def check_targets(graph: CompiledGraph, targets: Sequence[Task], source: str) -> Step:
    """`targets` (from a `Command.goto`) with END left out; unknown nodes raise `NodeError`."""
    out: list[Task] = []
    for target in targets:
        name = target if type(target) is str else target.node  # type: ignore[union-attr]
        if name == END and type(target) is str:
            continue
        if name not in graph.nodes:
            what = "Send to" if isinstance(target, Send) else "goto"
            raise NodeError(f"{what} unknown node {name!r} from {source!r}", node_id=source)
        if isinstance(target, Send) and not isinstance(target.arg, Mapping):
            raise NodeError(f"Send to {name!r} from {source!r} needs a mapping as its input, "
                            f"got {type(target.arg).__name__}", node_id=source)
        out.append(target)
    return tuple(out)


def node_ids(step: Sequence[Task]) -> tuple[str, ...]:
    """The node each task of a step runs."""
    return tuple(t if type(t) is str else t.node for t in step)  # type: ignore[union-attr]


def task_keys(step: Sequence[Task]) -> tuple[str, ...]:
    """A name per task, unique in the step: the node id, or `node[i]` for the i-th `Send`.

    Checkpoints key finished tasks' updates and interrupt answers by it.
    """
    keys: list[str] = []
    sends = 0
    for task in step:
        if type(task) is str:
            keys.append(task)
        else:
            keys.append(f"{task.node}[{sends}]")  # type: ignore[union-attr]
            sends += 1
    return tuple(keys)


def interrupts_in(graph: CompiledGraph, step: Sequence[Task]) -> tuple[str, ...]:
    """The interrupt nodes of a step: if any, the run pauses before the step."""
    nodes = graph.nodes
    return tuple(n for n in node_ids(step) if nodes[n].interrupt)


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


def _route(graph: CompiledGraph, branch: Branch, state: Mapping[str, Any], source: str) -> Step:
    try:
        answer = branch.router(dict(state))
    except Exception as exc:
        raise NodeError(f"router of {source!r} failed: {exc!r}", node_id=source) from exc
    if isinstance(answer, str | Send):
        answers: tuple[Any, ...] = (answer,)
    elif isinstance(answer, list | tuple):
        answers = tuple(answer)
    else:
        raise _router_error(branch, source, answer, "expected a node id or a list of them")
    targets: list[Task] = []
    for name in answers:
        if isinstance(name, Send):
            targets.extend(check_targets(graph, (name,), source))
            continue
        if not isinstance(name, str):
            raise _router_error(branch, source, answer, f"{name!r} is not a node id")
        target = name if branch.targets is None else branch.targets.get(name)
        if target is None or (target != END and target not in graph.nodes):
            raise _router_error(branch, source, answer, f"no node {name!r} to route to")
        if target != END:
            targets.append(target)
    return merge_targets((targets,))


def _router_error(branch: Branch, source: str, answer: Any, reason: str) -> RouterError:
    router = getattr(branch.router, "__name__", type(branch.router).__name__)
    return RouterError(node_id=source, router=router, returned=repr(answer)[:200], reason=reason)

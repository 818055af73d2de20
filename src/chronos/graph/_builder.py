"""`StateGraph`: declare nodes and edges, then `compile()` them into an immutable graph.

Building records everything, even mistakes, so that `compile()` can report every problem at
once instead of the first one: a graph author fixes a whole graph in one pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from chronos.errors import InvalidGraphError
from chronos.graph._draw import describe, draw_mermaid
from chronos.graph._retry import RetryPolicy
from chronos.graph._types import END, START, NodeFunction, Reducer, Router

__all__ = ["Branch", "CompiledGraph", "NodeSpec", "StateGraph"]

_RESERVED = (START, END)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A compiled node: its function and how the runner calls it."""

    id: str
    function: NodeFunction | None
    is_async: bool
    inline: bool
    interrupt: bool
    subgraph: CompiledGraph | None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    destinations: tuple[str, ...] = ()  # where its `Command(goto=...)` may lead
    pause_after: bool = False  # the run pauses once it has run (LangGraph's interrupt_after)


@dataclass(frozen=True, slots=True)
class Branch:
    """A conditional edge: the router and, if given, what its answers map to."""

    router: Router
    targets: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class CompiledGraph:
    """A validated, immutable graph, ready for `Runner`.

    Built by `StateGraph.compile()`; changing the builder afterwards does not change it.
    """

    id: str
    nodes: Mapping[str, NodeSpec]
    edges: Mapping[str, tuple[str, ...]]  # static successors, END left out
    branches: Mapping[str, Branch]
    entry: tuple[str, ...]
    entry_branch: Branch | None
    reducers: Mapping[str, Reducer]
    has_interrupts: bool  # whether any node (subgraphs aside) is an interrupt node

    def describe(self) -> dict[str, Any]:
        """The graph's nodes and edges as JSON-ready data, for a page to draw.

        `{"id", "nodes": [{"id", "interrupt"}], "edges": [{"source", "target",
        "conditional"}]}`; `draw_mermaid()` draws the same description.
        """
        return describe(self)

    def draw_mermaid(self) -> str:
        """The graph as a Mermaid flowchart, as LangGraph's `draw_mermaid()` writes it.

        ```python
        print(compiled.draw_mermaid())   # paste into https://mermaid.live or a Markdown file
        ```

        Static edges are solid, conditional ones (routers, `Command` destinations) dotted;
        interrupt nodes are marked.
        """
        return draw_mermaid(self)


class StateGraph:
    """Build a graph of nodes that read the state and return updates to it.

    ```python
    g = graph.StateGraph("qa", reducers={"log": graph.append})
    g.add_node("extract", extract).add_node("answer", answer)
    g.set_entry_point("extract").add_edge("extract", "answer").set_finish_point("answer")
    compiled = g.compile()
    ```

    A node returns the keys it changed (a partial update), the state it was given (with its
    changes), or None. Each key's reducer combines the new value with the old one; keys
    without a reducer are replaced. Every method returns the graph, so calls chain.

    Args:
        id: the graph's id, recorded in every run and checkpoint.
        reducers: a reducer per state key (`graph.append`, `graph.merge`, or any function
            of `(current, new)`).
    """

    def __init__(self, id: str, *, reducers: Mapping[str, Reducer] | None = None) -> None:
        self.id = id
        self._nodes: dict[str, NodeSpec] = {}
        self._order: list[str] = []
        self._duplicates: list[str] = []
        self._edges: list[tuple[str, str]] = []
        self._edge_calls: list[set[str]] = []  # the sources named by each add_edge call
        self._branches: list[tuple[str, Branch]] = []
        self._reducers: dict[str, Reducer] = dict(reducers or {})

    def add_node(
        self,
        node_id: str,
        function: NodeFunction,
        *,
        inline: bool = False,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        destinations: Sequence[str] = (),
    ) -> StateGraph:
        """Add a node running `function(state)`, a sync or async function.

        Sync functions run in a worker thread so they may block; pass `inline=True` for a
        short CPU-only sync function to run it on the event loop and skip the thread hop.

        Args:
            retry: try the node again when it fails (each failed attempt streams a `retry`
                event); the step's checkpoint is written once, after the attempt that works.
            timeout: seconds one attempt may take (an async node is cancelled; a sync one is
                abandoned in its thread), failing with `NodeTimeoutError`. An `inline` node
                runs on the loop, where nothing can interrupt it: `compile()` refuses both.
            destinations: the nodes its `Command(goto=...)` may lead to; a node that routes
                only that way needs no edge, and `draw_mermaid()` shows them.
        """
        return self._add(node_id, function, inline=inline, interrupt=False, subgraph=None,
                         retry=retry, timeout=timeout, destinations=tuple(destinations))

    def add_interrupt_node(
        self, node_id: str, function: NodeFunction | None = None, *, inline: bool = False
    ) -> StateGraph:
        """Add a node before which the run pauses (status "paused", an `interrupt` event).

        `runner.resume(session_id, update)` applies the update (a human's answer, an approval)
        and continues by executing this node. Without a function the node changes nothing.
        """
        return self._add(node_id, function, inline=inline, interrupt=True, subgraph=None)

    def add_subgraph(self, node_id: str, subgraph: CompiledGraph) -> StateGraph:
        """Add a compiled graph as one node: it runs on this graph's state.

        Its events reach the parent's stream tagged with the subgraph path (`event.path`).
        When it is the only node of its step, its steps are checkpointed too, and an interrupt
        node or a `graph.interrupt()` inside it pauses the whole run (`result.path` names the
        subgraph); `resume` continues inside it. Beside other nodes in a parallel step it runs
        as one unit: its nodes' `graph.interrupt()` questions pause the run with the step's
        others (`task` "sub/node"), and on resume it runs again from its entry with their
        answers replayed. Its interrupt nodes (and nodes that pause after they ran) pause the
        run the same way, reported as questions without a value (`Interrupt.point` "before"
        or "after"), which any resume passes.
        """
        return self._add(node_id, None, inline=False, interrupt=False, subgraph=subgraph)

    def add_edge(self, source: str | Sequence[str], target: str | Sequence[str]) -> StateGraph:
        """Run `target` after `source`.

        A list of targets starts parallel branches (`add_edge("plan", ["web", "docs"])`); a
        list of sources joins them (`add_edge(["web", "docs"], "write")`).
        """
        sources = _as_ids(source)
        for src in sources:
            for dst in _as_ids(target):
                self._edges.append((src, dst))
        self._edge_calls.append(set(sources))
        return self

    def add_conditional_edge(
        self,
        source: str,
        router: Router,
        targets: Mapping[str, str] | Sequence[str] | None = None,
    ) -> StateGraph:
        """After `source`, run the node(s) `router(state)` names.

        `targets` lists the allowed node ids, or maps the router's answers to node ids
        (`{"yes": "publish", "no": END}`), so `compile()` can check them. A router may return
        several ids to run them in parallel.
        """
        mapping: Mapping[str, str] | None
        if targets is None:
            mapping = None
        elif isinstance(targets, Mapping):
            mapping = MappingProxyType(dict(targets))
        else:
            mapping = MappingProxyType({t: t for t in _as_ids(targets)})
        self._branches.append((source, Branch(router, mapping)))
        return self

    add_conditional_edges = add_conditional_edge

    def set_entry_point(self, node_id: str) -> StateGraph:
        """Start runs at `node_id` (the same as `add_edge(START, node_id)`)."""
        return self.add_edge(START, node_id)

    def set_finish_point(self, node_id: str) -> StateGraph:
        """End the run after `node_id` (the same as `add_edge(node_id, END)`)."""
        return self.add_edge(node_id, END)

    def compile(self) -> CompiledGraph:
        """Validate the graph and freeze it.

        Raises:
            InvalidGraphError: listing every problem found, each naming its node.
        """
        problems = _validate(self)
        if problems:
            raise InvalidGraphError(problems)
        edges = _static_edges(self._edges)
        branches = dict(self._branches)
        return CompiledGraph(
            id=self.id,
            nodes=MappingProxyType({n: self._nodes[n] for n in self._order}),
            # END is implicit: a node whose static targets are all END has no successors.
            edges=MappingProxyType(
                {k: tuple(t for t in v if t != END) for k, v in edges.items() if k != START}
            ),
            branches=MappingProxyType({k: v for k, v in branches.items() if k != START}),
            entry=tuple(t for t in edges.get(START, ()) if t != END),
            entry_branch=branches.get(START),
            reducers=MappingProxyType(dict(self._reducers)),
            has_interrupts=any(spec.interrupt for spec in self._nodes.values()),
        )

    def _add(
        self,
        node_id: str,
        function: NodeFunction | None,
        *,
        inline: bool,
        interrupt: bool,
        subgraph: CompiledGraph | None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        destinations: tuple[str, ...] = (),
    ) -> StateGraph:
        if node_id in self._nodes:
            self._duplicates.append(node_id)
            return self
        self._nodes[node_id] = NodeSpec(
            id=node_id,
            function=function,
            is_async=_is_async(function),
            inline=inline,
            interrupt=interrupt,
            subgraph=subgraph,
            retry=retry,
            timeout=timeout,
            destinations=destinations,
        )
        self._order.append(node_id)
        return self


def _as_ids(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _is_async(function: Callable[..., Any] | None) -> bool:
    if function is None:
        return False
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    )


def _static_edges(edges: Sequence[tuple[str, str]]) -> dict[str, dict[str, None]]:
    """Each source's static targets, once each, in the order they were added."""
    static: dict[str, dict[str, None]] = {}
    for src, dst in edges:
        static.setdefault(src, {})[dst] = None
    return static


# Every part is linear in nodes plus edges, so that graphs of many thousand nodes compile.
def _validate(g: StateGraph) -> list[str]:
    """Every problem in the graph, in a stable order, each naming the node concerned."""
    problems: list[str] = []
    known = set(g._nodes)
    for node_id in dict.fromkeys(g._duplicates):
        problems.append(f"duplicate node id {node_id!r}")
    for node_id, spec in g._nodes.items():
        if node_id in _RESERVED or not node_id:
            problems.append(f"node id {node_id!r} is reserved or empty")
        if spec.subgraph is not None:
            if not isinstance(spec.subgraph, CompiledGraph):
                problems.append(f"subgraph node {node_id!r} needs a compiled graph")
        elif spec.function is not None and not callable(spec.function):
            problems.append(f"node {node_id!r} is not callable")
        elif spec.function is None and not spec.interrupt:
            problems.append(f"node {node_id!r} has no function")
        if spec.timeout is not None and not spec.timeout > 0:
            problems.append(f"node {node_id!r} has a timeout of {spec.timeout!r}; give seconds > 0")
        elif spec.timeout is not None and spec.inline:
            problems.append(f"node {node_id!r} is inline and has a timeout: nothing can stop a "
                            f"node running on the event loop; drop inline=True to time it")
        problems.extend(f"node {node_id!r} names unknown destination {target!r}"
                        for target in spec.destinations if target != END and target not in known)

    static = _static_edges(g._edges)
    for src, dst in g._edges:
        if src == END:
            problems.append(f"edge from END to {dst!r}: END has no successors")
        elif src != START and src not in known:
            problems.append(f"edge from unknown node {src!r} to {dst!r}")
        if dst == START:
            problems.append(f"edge from {src!r} to START: START has no predecessors")
        elif dst != END and dst not in known:
            problems.append(f"edge from {src!r} to unknown node {dst!r}")

    # One static add_edge call per source: parallel targets are declared in one call, so two
    # calls from one node are almost always a mistake (a forgotten conditional edge).
    calls: dict[str, int] = {}
    for sources in g._edge_calls:
        for src in sources:
            calls[src] = calls.get(src, 0) + 1
    for src, count in calls.items():
        if count > 1:
            name = "START" if src == START else repr(src)
            problems.append(f"node {name} has {count} static out-edges; use a conditional edge, "
                            f"or add_edge({src!r}, [...]) for parallel branches")

    branch_sources: dict[str, int] = {}
    for src, branch in g._branches:
        branch_sources[src] = branch_sources.get(src, 0) + 1
        if src != START and src not in known:
            problems.append(f"conditional edge from unknown node {src!r}")
        if inspect.iscoroutinefunction(branch.router):
            problems.append(f"router of {src!r} is async; routers must be plain functions")
        for target in (branch.targets or {}).values():
            if target != END and target not in known:
                problems.append(f"conditional edge from {src!r} may route to unknown node "
                                f"{target!r}")
    for src, count in branch_sources.items():
        if count > 1:
            problems.append(f"node {src!r} has {count} conditional edges; merge them into one")
        if src in static:
            problems.append(f"node {src!r} has both a static and a conditional edge")

    if START not in static and START not in branch_sources:
        problems.append("no entry point: call set_entry_point() or add_edge(START, ...)")
    for node_id in g._order:
        if node_id not in static and node_id not in branch_sources and (
            not g._nodes[node_id].destinations
        ):
            problems.append(f"node {node_id!r} has no outgoing edge; add one to END "
                            f"or call set_finish_point({node_id!r})")
    reachable = _reachable(g, static)
    problems.extend(
        f"node {node_id!r} is unreachable from the entry point"
        for node_id in g._order
        if node_id not in reachable
    )
    return problems


def _reachable(g: StateGraph, static: Mapping[str, Mapping[str, None]]) -> set[str]:
    branches: dict[str, list[Branch]] = {}
    for src, branch in g._branches:
        branches.setdefault(src, []).append(branch)
    seen: set[str] = set()
    frontier = [START]
    everything_added = False  # an untargeted router may lead anywhere: add every node once
    while frontier:
        node = frontier.pop()
        successors: list[str] = list(static.get(node, ()))
        if node in g._nodes:
            successors.extend(g._nodes[node].destinations)
        for branch in branches.get(node, ()):
            if branch.targets is not None:
                successors.extend(branch.targets.values())
            elif not everything_added:
                everything_added = True
                successors.extend(g._order)
        for nxt in successors:
            if nxt not in seen and nxt in g._nodes:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


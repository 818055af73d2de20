"""Assistants: one per served graph, found by its assistant id or its graph id.

The Agent Server gives each graph a default assistant whose id is a UUID5 of the graph id, and
accepts the graph id wherever an assistant id goes; so do we, so that SDK code written for it
(`assistant_id="agent"`) works unchanged.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chronos.errors import RequestRefused
from chronos.graph import END, START, CompiledGraph, Runner
from chronos.server._body import read_json_object
from chronos.server._fields import field
from chronos.server._metrics import ServerMetrics
from chronos.server._response import JSONResponse
from chronos.server._retention import TokenTopics
from chronos.store import CheckpointStore
from chronos.stream import BrokerProtocol

__all__ = ["Assistants", "ServedGraph", "assistant_routes"]

# The namespace the Agent Server derives default assistant ids from, so ids match across both.
_NAMESPACE_GRAPH: Final = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


@dataclasses.dataclass(frozen=True, slots=True)
class ServedGraph:
    """A graph served under `graph_id`, with its default assistant."""

    graph_id: str
    graph: CompiledGraph
    assistant_id: str
    created_at: str

    def describe(self) -> dict[str, Any]:
        """The assistant as the API returns it."""
        return {
            "assistant_id": self.assistant_id, "graph_id": self.graph_id, "config": {},
            "context": {}, "created_at": self.created_at, "updated_at": self.created_at,
            "metadata": {"created_by": "system"}, "version": 1, "name": self.graph_id,
            "description": None,
        }


class Assistants:
    """The served graphs, and a `Runner` for each set of per-run static interrupts."""

    def __init__(
        self,
        graphs: Mapping[str, CompiledGraph],
        store: CheckpointStore,
        broker: BrokerProtocol,
        metrics: ServerMetrics | None = None,
    ) -> None:
        now = datetime.now(UTC).isoformat()
        self.served = {
            graph_id: ServedGraph(graph_id, compiled,
                                  str(uuid.uuid5(_NAMESPACE_GRAPH, graph_id)), now)
            for graph_id, compiled in graphs.items()
        }
        self._by_assistant = {s.assistant_id: s for s in self.served.values()}
        self._store = store
        self._broker = broker
        self._metrics = metrics
        self._runners: dict[tuple[str, frozenset[str], frozenset[str]], Runner] = {}

    def find(self, assistant_id: str) -> ServedGraph:
        """The graph an assistant id (or a graph id) names.

        Raises:
            RequestRefused: 404, no such assistant.
        """
        served = self._by_assistant.get(assistant_id) or self.served.get(assistant_id)
        if served is None:
            raise RequestRefused(404, f"Assistant '{assistant_id}' not found")
        return served

    def runner(self, served: ServedGraph, interrupt_before: tuple[str, ...] = (),
               interrupt_after: tuple[str, ...] = ()) -> Runner:
        """The runner of `served`, pausing before `interrupt_before` and after
        `interrupt_after` too ("*": every node). After a node, the run pauses wherever its
        edges (static or conditional) lead; after its last node a run simply completes.

        Raises:
            RequestRefused: 422, a node the graph does not have.
        """
        graph = served.graph
        nodes = graph.nodes
        before = frozenset(nodes) if "*" in interrupt_before else frozenset(interrupt_before)
        after = frozenset(nodes) if "*" in interrupt_after else frozenset(interrupt_after)
        for name, wanted in (("interrupt_before", before), ("interrupt_after", after)):
            unknown = sorted(wanted - set(nodes))
            if unknown:
                raise RequestRefused(422, f"field {name!r} names unknown nodes {unknown}")
        key = (served.graph_id, before, after)
        runner = self._runners.get(key)
        if runner is None:
            observe = self._metrics.run_events(graph.id) if self._metrics else None
            runner = Runner(_pausing(graph, before, after), self._store,
                            broker=TokenTopics(self._broker, observe))
            self._runners[key] = runner
        return runner


def _pausing(graph: CompiledGraph, before: frozenset[str],
             after: frozenset[str]) -> CompiledGraph:
    """The same graph (same id, so checkpoints stay compatible) pausing before and after more
    nodes."""
    if not before and not after:
        return graph
    specs = {node_id: dataclasses.replace(spec, interrupt=spec.interrupt or node_id in before,
                                          pause_after=spec.pause_after or node_id in after)
             for node_id, spec in graph.nodes.items()}
    return dataclasses.replace(graph, nodes=specs, has_interrupts=True)


def _drawing(graph: CompiledGraph) -> dict[str, Any]:
    """Nodes and edges in the Agent Server's `get_graph` shape."""
    nodes: list[dict[str, Any]] = [{"id": START, "type": "schema", "data": START}]
    nodes += [{"id": n, "type": "runnable", "data": {"id": [n], "name": n}} for n in graph.nodes]
    nodes.append({"id": END, "type": "schema", "data": END})
    edges: list[dict[str, Any]] = [{"source": START, "target": t} for t in graph.entry]
    if graph.entry_branch is not None:
        edges += _branch_edges(START, graph.entry_branch.targets, graph)
    for source in graph.nodes:
        if source in graph.branches:
            edges += _branch_edges(source, graph.branches[source].targets, graph)
        else:
            edges += [{"source": source, "target": t} for t in graph.edges.get(source) or (END,)]
    return {"nodes": nodes, "edges": edges}


def _branch_edges(
    source: str, targets: Mapping[str, str] | None, graph: CompiledGraph
) -> list[dict[str, Any]]:
    names = list(targets.values()) if targets is not None else [*graph.nodes, END]
    return [{"source": source, "target": t, "conditional": True} for t in dict.fromkeys(names)]


def _schemas(served: ServedGraph) -> dict[str, Any]:
    # Chronos state is a plain dict with no declared schema: an open object says so honestly.
    state = {"title": served.graph_id, "type": "object"}
    return {"graph_id": served.graph_id, "input_schema": state, "output_schema": state,
            "state_schema": state, "config_schema": None, "context_schema": None}


def assistant_routes(assistants: Assistants) -> list[Route]:
    async def search(request: Request) -> Response:
        body = await read_json_object(request)
        graph_id = field(body, "graph_id", str, "")
        limit = field(body, "limit", int, 10)
        offset = field(body, "offset", int, 0)
        found = [s.describe() for s in assistants.served.values()
                 if not graph_id or s.graph_id == graph_id]
        return JSONResponse(found[offset:offset + limit])

    async def get(request: Request) -> Response:
        return JSONResponse(assistants.find(request.path_params["assistant_id"]).describe())

    async def get_graph(request: Request) -> Response:
        return JSONResponse(_drawing(assistants.find(request.path_params["assistant_id"]).graph))

    async def get_schemas(request: Request) -> Response:
        return JSONResponse(_schemas(assistants.find(request.path_params["assistant_id"])))

    return [
        Route("/assistants/search", search, methods=["POST"]),
        Route("/assistants/{assistant_id}", get, methods=["GET"]),
        Route("/assistants/{assistant_id}/graph", get_graph, methods=["GET"]),
        Route("/assistants/{assistant_id}/schemas", get_schemas, methods=["GET"]),
    ]

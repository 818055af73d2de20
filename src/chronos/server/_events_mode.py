"""The `events` stream mode: a run told as LangChain's `astream_events` (v2) would tell it.

The reference server forwards every callback event of the LangChain runnables inside a graph
(the graph, each node, each channel write and router, each chat model). A chronos node holds
no runnables, so this mode gives the events that map onto what a chronos run does, with the
same shape (`{"event", "name", "run_id", "parent_ids", "tags", "metadata", "data"}`):

- `on_chain_start` / `on_chain_end` for the graph (named by its graph id, as the reference
  names it) with its input and final values, and an `on_chain_stream` of
  `{"__interrupt__": [...]}` when the run pauses;
- `on_chain_start` / `on_chain_stream` (its update) / `on_chain_end` for each node, with the
  state it started from, tagged `graph:step:N`;
- `on_chat_model_start` / `on_chat_model_stream` (one per token, `data.chunk` an
  `AIMessageChunk`) / `on_chat_model_end` for each model message a node streams;
- `on_custom_event` for `chronos.graph.emit(name, data)`, as for LangChain's
  `adispatch_custom_event(name, data)`.

Run ids are UUIDs derived from the run and the task, so a join or a reconnect sees the same
ones. For the benchmark graph the order and shapes are the reference's (compared against
`langgraph dev`); the differences are listed in the README (Serving graphs).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from chronos.server._message_chunk import message_chunk

__all__ = ["EventsMode"]

_GRAPH_NAME: Final = "LangGraph"  # when a join began after the run's start marker
_MODEL_NAME: Final = "chat_model"

Frame = tuple[str, Any]


class EventsMode:
    """The `events` frames of one run, built from the translator's view of it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._graph_run = run_id
        self._graph_name = _GRAPH_NAME
        self._messages: dict[str, tuple[str, str]] = {}  # message id -> (task id, text so far)

    def _event(self, kind: str, name: str, run_id: str, parents: list[str],
               data: dict[str, Any], *, tags: list[str] | None = None,
               metadata: Mapping[str, Any] | None = None) -> Frame:
        return ("events", {"event": kind, "name": name, "run_id": run_id, "parent_ids": parents,
                           "tags": tags or [], "metadata": dict(metadata or {}), "data": data})

    def _node_run(self, task_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chronos:{task_id}"))

    def start(self, graph_id: str | None, values: Any) -> list[Frame]:
        self._graph_name = graph_id or _GRAPH_NAME
        return [self._event("on_chain_start", self._graph_name, self._graph_run, [],
                            {"input": values})]

    def node_start(self, task_id: str, node: str, step: int, values: Any,
                   metadata: Mapping[str, Any]) -> list[Frame]:
        return [self._event("on_chain_start", node, self._node_run(task_id), [self._graph_run],
                            {"input": values}, tags=[f"graph:step:{step}"], metadata=metadata)]

    def node_end(self, task_id: str, node: str, step: int, values: Any, update: Any,
                 metadata: Mapping[str, Any]) -> list[Frame]:
        node_run = self._node_run(task_id)
        out = []
        for message_id in [m for m, (t, _) in self._messages.items() if t == task_id]:
            text = self._messages.pop(message_id)[1]
            out.append(self._event("on_chat_model_end", _MODEL_NAME, _message_run(message_id),
                                   [self._graph_run, node_run],
                                   {"input": {},
                                    "output": message_chunk(message_id, text, complete=True)},
                                   metadata=metadata))
        tags = [f"graph:step:{step}"]
        out.append(self._event("on_chain_stream", node, node_run, [self._graph_run],
                               {"chunk": update}, tags=tags, metadata=metadata))
        out.append(self._event("on_chain_end", node, node_run, [self._graph_run],
                               {"input": values, "output": update}, tags=tags,
                               metadata=metadata))
        return out

    def token(self, task_id: str, message_id: str, chunk: dict[str, Any],
              metadata: Mapping[str, Any]) -> list[Frame]:
        parents = [self._graph_run, self._node_run(task_id)]
        out = []
        if message_id not in self._messages:
            self._messages[message_id] = (task_id, "")
            out.append(self._event("on_chat_model_start", _MODEL_NAME, _message_run(message_id),
                                   parents, {"input": {}}, metadata=metadata))
        self._messages[message_id] = (task_id, self._messages[message_id][1] + chunk["content"])
        out.append(self._event("on_chat_model_stream", _MODEL_NAME, _message_run(message_id),
                               parents, {"chunk": chunk}, metadata=metadata))
        return out

    def custom(self, task_id: str, name: str, data: Any,
               metadata: Mapping[str, Any]) -> list[Frame]:
        return [self._event("on_custom_event", name, self._node_run(task_id),
                            [self._graph_run], data, metadata=metadata)]

    def interrupt(self, asked: list[dict[str, Any]]) -> list[Frame]:
        return [self._event("on_chain_stream", self._graph_name, self._graph_run, [],
                            {"chunk": {"__interrupt__": asked}})]

    def end(self, values: Any) -> list[Frame]:
        return [self._event("on_chain_end", self._graph_name, self._graph_run, [],
                            {"output": values})]


def _message_run(message_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chronos-message:{message_id}"))

"""A run's broker events translated into the Agent Server's stream modes (pure, no I/O).

The runner publishes chronos graph events (`node_end`, `token`, `custom`...) with the thread id
as topic; the run manager brackets each run with `run_start` and `run_end` markers. One
`RunTranslator` per SSE connection turns the events of its run into `(event, data)` pairs:

- values: the state when the run starts, then after every node (so once per node of a
  parallel step, where LangGraph sends one per step);
- updates: `{node: update}` after every node, `{"__interrupt__": [...]}` when the run pauses;
- messages-tuple: `messages` events `[message chunk, metadata]` for every model token;
- messages: `messages/metadata` once per message, `messages/partial` with the message so far,
  `messages/complete` when its node ends;
- custom: the data given to `chronos.graph.emit`;
- debug: `task` / `task_result` / `checkpoint` records; tasks: the task and task-result
  payloads alone; checkpoints: the checkpoint payloads alone (values and next);
- events: LangChain's `astream_events` records, where they map (`_events_mode.py`);
- and `error` when the run fails.

Subgraph events carry `event|namespace` names when the run asked for `stream_subgraphs`, and
are left out otherwise.

A run publishes only what its own modes need (`published_events`), as LangGraph's server
does: a run started without "messages" sends no tokens, so its joins get none either.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeGuard

import orjson

from chronos.graph import END
from chronos.server._events_mode import EventsMode
from chronos.server._message_chunk import is_text_only, message_chunk, text_chunk_tail
from chronos.server._state import iso

__all__ = ["RUN_END", "RUN_START", "STREAM_MODES", "RunTranslator", "api_interrupts",
           "published_events"]

RUN_START: Final = "run_start"
RUN_END: Final = "run_end"
STREAM_MODES: Final = ("values", "updates", "messages", "messages-tuple", "custom", "debug",
                       "tasks", "checkpoints", "events")

Frame = tuple[str, Any]

# The graph events every run publishes: a few per node, which the state modes, the step
# numbers, interrupts, the run's end and the node metrics rely on. Tokens and custom events,
# most of a run's events (200 tokens against 9 others in the benchmark's run), only go out
# for a mode that streams them.
_GRAPH_EVENTS: Final = frozenset({"node_start", "node_end", "edge_transition", "checkpoint",
                                  "retry", "interrupt", "completed", "error", "cancelled"})
_MODE_EVENTS: Final[Mapping[str, frozenset[str]]] = {
    "messages": frozenset({"token"}), "messages-tuple": frozenset({"token"}),
    "custom": frozenset({"custom"}), "events": frozenset({"token", "custom"}),
}


def published_events(modes: Iterable[str]) -> frozenset[str]:
    """The graph event types a run streamed in `modes` publishes to the broker."""
    return _GRAPH_EVENTS.union(*(_MODE_EVENTS.get(m, ()) for m in modes))


class RunTranslator:
    """Follows one run's events on its thread's topic and yields its frames.

    Args:
        run_id: the API run id, as in the `run_start` / `run_end` markers.
        modes: the stream modes asked for.
        subgraphs: whether subgraph events are wanted.
        started: whether the run had started when the subscription began (a join), so that
            its events count before any `run_start` is seen.
    """

    def __init__(self, run_id: str, modes: tuple[str, ...], *, subgraphs: bool,
                 started: bool) -> None:
        self.run_id = run_id
        self.modes = frozenset(modes)
        self.subgraphs = subgraphs
        self.inside = started
        self.finished = False
        self._messages: dict[str, str] = {}  # text so far per message id ("messages" mode)
        self._message_nodes: dict[str, str] = {}
        self._step = -1  # of the last checkpoint; a task belongs to the step after it
        self._values: Any = None  # the state as last seen, for debug checkpoints
        self._next: list[str] = []  # where the edges since the last checkpoint lead
        self._events = EventsMode(run_id) if "events" in self.modes else None
        self._inputs: dict[str, Any] = {}  # task id -> the state it started from (events)
        # messages-tuple: what a node's tokens share, encoded once (`_message_tuple`).
        self._tail_of: str | None = None  # the message `_chunk_tail` is of
        self._chunk_tail = b""
        self._metadata_of: tuple[Any, int] | None = None  # the (node, step) of `_metadata_json`
        self._metadata_json = b""

    def frames(self, type: str, payload: Any) -> list[Frame]:
        """The frames one broker event gives (most give none or one)."""
        if type in (RUN_START, RUN_END):
            return self._marker(type, payload)
        if not self.inside or self.finished or not _is_mapping(payload):
            return []
        path = payload.get("path") or []
        if path and not self.subgraphs:
            return []
        suffix = "|" + "|".join(path) if path else ""
        out: list[Frame] = []
        if type == "token":  # first: nearly every event of a streamed run is one
            self._token(out, suffix, payload)
        elif type == "node_start":
            self._debug(out, suffix, "task", {"id": _task_id(payload), "name": payload["node_id"],
                                              "input": None, "triggers": []}, self._step + 1)
            if self._events is not None and not path:
                self._inputs[_task_id(payload)] = self._values
                out += self._events.node_start(_task_id(payload), payload["node_id"],
                                               self._step + 1, self._values,
                                               self._metadata(payload))
        elif type == "edge_transition":
            target = (payload.get("data") or {}).get("to")
            if isinstance(target, str) and target != END and target not in self._next:
                self._next.append(target)
        elif type == "node_end":
            self._node_end(out, suffix, payload)
        elif type == "custom":
            if "custom" in self.modes:
                out.append(("custom" + suffix, payload.get("data")))
            if self._events is not None and not path:
                out += self._events.custom(_task_id(payload), str(payload.get("name")),
                                           payload.get("data"), self._metadata(payload))
        elif type == "checkpoint" and payload.get("name") != "replay":
            self._step += 1
            self._checkpoint(out, suffix, str(payload.get("data")))
        elif type == "interrupt":
            self._interrupt(out, suffix, payload)
        return out

    def _interrupt(self, out: list[Frame], suffix: str, payload: Mapping[str, Any]) -> None:
        """A pause: `interrupt()` questions go to updates and, with the state, to values; a
        static interrupt (an interrupt node) is an empty `__interrupt__` in updates only."""
        asked = [{**i, "response_schema": None} for i in api_interrupts(payload.get("data"))]
        if "updates" in self.modes:
            out.append(("updates" + suffix, {"__interrupt__": asked}))
        if asked and "values" in self.modes and isinstance(payload.get("state"), Mapping):
            out.append(("values" + suffix, {**payload["state"], "__interrupt__": asked}))
        if self._events is not None and not suffix:
            out += self._events.interrupt(asked)

    def _marker(self, type: str, payload: Any) -> list[Frame]:
        if not isinstance(payload, Mapping) or payload.get("run_id") != self.run_id:
            return []
        if type == RUN_START:
            self.inside = True
            self._values = payload.get("values")
            self._next = list(payload.get("next") or [])
            out: list[Frame] = []
            if "values" in self.modes:
                out.append(("values", self._values))
            # LangGraph's input checkpoint, before the first step.
            self._debug(out, "", "checkpoint", {
                "checkpoint_id": None, "values": payload.get("before"), "next": ["__start__"],
                "metadata": {"source": "input", "step": -1}}, -1)
            if self._events is not None:
                out += self._events.start(payload.get("graph_id"), self._values)
            return out
        self.finished = True
        if payload.get("status") == "error":
            return [("error", {"error": payload.get("error_type") or "Error",
                               "message": payload.get("error") or ""})]
        if self._events is not None and payload.get("status") == "success":
            return self._events.end(self._values)
        return []

    def _node_end(self, out: list[Frame], suffix: str, payload: Mapping[str, Any]) -> None:
        node_id = payload["node_id"]
        update = payload.get("data")
        if self._events is not None and not suffix:
            task_id = _task_id(payload)
            out += self._events.node_end(task_id, node_id, self._step + 1,
                                         self._inputs.pop(task_id, None), update,
                                         self._metadata(payload))
        self._values = payload.get("state")
        self._next = []
        if "updates" in self.modes:
            out.append(("updates" + suffix, {node_id: update}))
        if "values" in self.modes:
            out.append(("values" + suffix, payload.get("state")))
        self._debug(out, suffix, "task_result", {
            "id": _task_id(payload), "name": node_id, "error": None, "interrupts": [],
            "result": list((update or {}).items()) if isinstance(update, Mapping) else [],
        }, self._step + 1)
        if "messages" in self.modes:
            for message_id in [m for m, n in self._message_nodes.items() if n == node_id]:
                text = self._messages.pop(message_id)
                del self._message_nodes[message_id]
                out.append(("messages/complete" + suffix,
                            [message_chunk(message_id, text, complete=True)]))

    def _token(self, out: list[Frame], suffix: str, payload: Mapping[str, Any]) -> None:
        delta = payload.get("data")
        if not _is_mapping(delta):
            return
        message_id = str(delta.get("message_id", ""))
        content = str(delta.get("content") or "")
        if self._events is not None and not suffix:
            out += self._events.token(_task_id(payload), message_id,
                                      message_chunk(message_id, content, delta=delta),
                                      self._metadata(payload))
        if "messages-tuple" in self.modes:
            out.append(("messages" + suffix,
                        self._message_tuple(message_id, content, delta, payload)))
        if "messages" in self.modes:
            if message_id not in self._messages:
                self._messages[message_id] = ""
                self._message_nodes[message_id] = str(payload.get("node_id"))
                out.append(("messages/metadata" + suffix,
                            {message_id: {"metadata": self._metadata(payload)}}))
            self._messages[message_id] += content
            out.append(("messages/partial" + suffix,
                        [message_chunk(message_id, self._messages[message_id], complete=True)]))

    def _message_tuple(self, message_id: str, content: str, delta: Mapping[str, Any],
                       payload: Mapping[str, Any]) -> orjson.Fragment:
        """A token's `[message chunk, metadata]`, as the JSON `orjson.dumps` makes of them.

        Built from parts instead, per token the most frequent frame of a run: the metadata is
        the same for every token of a node's step, and a text-only chunk differs from its
        message's others in its content alone (`text_chunk_tail`), so a token encodes its
        content and nothing else."""
        if is_text_only(delta):
            if message_id != self._tail_of:
                self._tail_of = message_id
                self._chunk_tail = text_chunk_tail(message_id)
            chunk = b'{"content":%b%b' % (orjson.dumps(content), self._chunk_tail)
        else:
            chunk = orjson.dumps(message_chunk(message_id, content, delta=delta), default=repr)
        node = (payload.get("node_id"), self._step)
        if node != self._metadata_of:
            self._metadata_of = node
            self._metadata_json = orjson.dumps(self._metadata(payload), default=repr)
        return orjson.Fragment(b"[%b,%b]" % (chunk, self._metadata_json))

    def _metadata(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What LangGraph tells of the node an event comes from."""
        node_id = payload.get("node_id")
        return {"langgraph_node": node_id, "langgraph_step": self._step + 1,
                "langgraph_path": ["__pregel_pull", node_id], "run_id": self.run_id}

    def _checkpoint(self, out: list[Frame], suffix: str, checkpoint_id: str) -> None:
        self._debug(out, suffix, "checkpoint", {
            "checkpoint_id": checkpoint_id, "values": self._values, "next": list(self._next),
            "metadata": {"source": "loop", "step": self._step}}, self._step)

    def _debug(self, out: list[Frame], suffix: str, kind: str, body: dict[str, Any],
               step: int) -> None:
        """A task, task result or checkpoint: for debug (wrapped) and tasks / checkpoints."""
        if "debug" in self.modes:
            out.append(("debug" + suffix, _record(kind, step, body)))
        mode = "checkpoints" if kind == "checkpoint" else "tasks"
        if mode in self.modes:
            out.append((mode + suffix, body))


def _record(kind: str, step: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "timestamp": iso(time.time()), "step": step, "payload": payload}


def api_interrupts(data: Any) -> list[dict[str, Any]]:
    """`graph.interrupt()` questions (objects in process, dicts from Redis) as the API shows
    them, `{"value", "id"}`; node ids (a pause before an interrupt node) give none."""
    records = orjson.loads(orjson.dumps(data, default=repr)) if data else []
    return [{"value": r.get("value"), "id": r.get("id")} for r in records
            if isinstance(r, dict)]


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # Every event's payload: a dict (decoded JSON) answers at once, without the ABC's check.
    return type(value) is dict or isinstance(value, Mapping)


def _task_id(payload: Mapping[str, Any]) -> str:
    return f"{payload.get('run_id')}:{payload.get('node_id')}:{'/'.join(payload.get('path') or [])}"

"""What a front end's conversation adds to a thread: its messages as the graph's state holds
them (OpenAI-style dicts), less those the thread already has.

AG-UI clients and `useChat` send the whole conversation with every request, where a graph
with `reducers={"messages": graph.append}` keeps it in its thread already; so only messages
whose `id` the thread's `messages` do not hold are given to the run. A node that stores the
assistant message under the id it streamed with (`graph.stream_chat(..., message_id=...)`)
has it recognised when the client sends it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chronos.errors import RequestRefused
from chronos.graph import append
from chronos.server._runs import Runs

__all__ = ["adding_messages", "new_messages", "thread_values"]


async def thread_values(runs: Runs, thread_id: str | None) -> Mapping[str, Any]:
    """The thread's latest state (empty for a new or unnamed thread)."""
    if thread_id is None:
        return {}
    latest = await runs.threads.store.latest(thread_id)
    return latest.state if latest is not None else {}


def new_messages(runs: Runs, graph_id: str, values: Mapping[str, Any],
                 messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` without those already in `values["messages"]`, when the graph appends
    messages (a graph that replaces them gets the whole conversation)."""
    graph = runs.assistants.find(graph_id).graph
    held = values.get("messages")
    if graph.reducers.get("messages") is not append or not isinstance(held, list):
        return list(messages)
    known = {m.get("id") for m in held if isinstance(m, Mapping)}
    return [m for m in messages if m.get("id") not in known]


def adding_messages(command: Mapping[str, Any], field: str, changes: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """A command (`{resume, update, goto}`, from the request's `field`) whose update also
    makes the request's `changes` (its new messages, its state): what the user wrote beside
    the answer to a paused run is kept too.

    Raises:
        RequestRefused: 422, its `update` is not an object.
    """
    update = command.get("update") or {}
    if not isinstance(update, dict):
        raise RequestRefused(422, f"field '{field}.update' must be an object")
    return {**command, "update": {**update, **changes}}

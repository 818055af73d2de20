"""How a run calls the graph's runner: from its input, its command, a checkpoint, a rollback.

Before the runner starts, `announce` gets the values the run starts from (for the `run_start`
marker: the `values` stream mode's first event and LangGraph's input checkpoint). The run
publishes the events its stream modes need (`published_events`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chronos.errors import CheckpointNotFound
from chronos.graph import (
    Command,
    CompiledGraph,
    Runner,
    RunState,
    append,
    apply_updates,
    entry_nodes,
    merge,
    node_ids,
)
from chronos.server._run_request import RunRequest
from chronos.server._stream_modes import published_events
from chronos.store import Checkpoint

__all__ = ["call_runner"]


async def call_runner(runner: Runner, thread_id: str, request: RunRequest,
                      base: Checkpoint | None, *, from_base: bool,
                      announce: Callable[[dict[str, Any]], None]) -> RunState:
    """Run `request` on the thread, continuing from `base` (its latest checkpoint, or the one
    asked for: `from_base` then continues from that checkpoint rather than the latest)."""
    graph = runner.graph
    events = published_events(request.stream_modes)
    update = dict(request.update)
    resume: dict[str, Any] = {}
    if request.has_resume and base is not None and not base.interrupts:
        # Paused before an interrupt node, which asked nothing: an object answer is
        # merged into the state, as `runner.resume(session, update)` does.
        if isinstance(request.resume, dict):
            update.update(request.resume)
    elif request.has_resume:
        resume = {"resume": request.resume}
    if request.input is not None:
        before = dict(base.state) if base is not None else _empty_channels(graph)
        state = apply_updates(graph, before, [request.input, update])
        announce({"before": before, "values": state, "next": list(_entry_or_none(graph, state))})
        return await runner.run(thread_id, state, broker_events=events,
                                durability=request.durability)
    if base is None:
        raise CheckpointNotFound(session_id=thread_id)
    announce({"before": base.state, "next": list(base.next),
              "values": apply_updates(graph, base.state, [update])})
    if from_base:
        return await runner.resume_from_checkpoint(base.id, update or None,
                                                   broker_events=events,
                                                   durability=request.durability)
    return await runner.resume(thread_id, Command(goto=request.goto, update=update or None,
                                                  **resume), broker_events=events,
                               durability=request.durability)


def _empty_channels(graph: CompiledGraph) -> dict[str, Any]:
    """A new thread's state: keys with a list or dict reducer start empty, as LangGraph's
    channels do, so that clients see `{"messages": []}` before anything is added."""
    empty: dict[str, Any] = {}
    for key, reducer in graph.reducers.items():
        if reducer is append:
            empty[key] = []
        elif reducer is merge:
            empty[key] = {}
    return empty


def _entry_or_none(graph: CompiledGraph, state: Mapping[str, Any]) -> tuple[str, ...]:
    """The first step, for the stream; a router that fails here fails the run itself later."""
    try:
        return node_ids(entry_nodes(graph, state))
    except Exception:
        return ()

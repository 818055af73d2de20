"""A run's context (`Run`, what the loop passes around) and its snapshot (`RunState`)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count
from types import MappingProxyType
from typing import Any, Literal

from chronos import _telemetry
from chronos._records import quick_init
from chronos._telemetry import RunTrace
from chronos.graph._builder import CompiledGraph
from chronos.graph._command import Send
from chronos.graph._events import EventHub
from chronos.graph._interrupt import Interrupt
from chronos.graph._plan import Routed, Step, node_ids
from chronos.graph._types import Durability, State
from chronos.graph._usage import USAGE_KEY, UsageLedger
from chronos.model import Pricing, Usage
from chronos.store import Checkpoint, CheckpointStore

__all__ = ["Run", "RunState", "RunStatus", "new_id", "step_of", "usage_fields"]

RunStatus = Literal["running", "paused", "completed", "failed", "cancelled"]


@quick_init  # made per run: without slots, its fields are set in one step (_records.py)
@dataclass(frozen=True)
class RunState:
    """Where a run stands: what `run` and `resume` return, and `Runner.get_state` reports.

    `status` is "completed", or "paused": before an interrupt node (`node_id`; resume with
    `runner.resume(session_id, update)`), or inside nodes that called `graph.interrupt()`
    (`interrupts` lists each question with its id; answer with
    `runner.resume(session_id, resume=answer)`). `next` lists the nodes a resume would run
    (a node once per `Send`); `seq` is the number of the run's last event; times are seconds
    since the epoch. `path` names the subgraph nodes enclosing `node_id` and `next` (a pause
    inside a subgraph), outermost first.

    `usage` adds up the model calls made through `graph.stream_chat` (retried attempts
    included: they were paid for), `usage_by_node` by node (`outer/inner` inside a subgraph);
    `cost` and `cost_by_node` are in US dollars, None where a call's price is not known. A
    resumed run's totals go on from its checkpoint's, so they cover the whole session.
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
    interrupts: tuple[Interrupt, ...] = ()
    usage: Usage = field(default_factory=Usage)
    usage_by_node: Mapping[str, Usage] = field(default_factory=dict)
    cost: float | None = None
    cost_by_node: Mapping[str, float | None] = field(default_factory=dict)


_ids = count()
_prefix = uuid.uuid4().hex[:16]


def _new_prefix() -> None:
    global _prefix
    _prefix = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)  # a forked child must not repeat our ids


def new_id() -> str:
    """A process-unique id that no other process picks: 64 random bits and a counter."""
    return f"{_prefix}{next(_ids):08x}"


def step_of(checkpoint: Checkpoint) -> Step:
    """The step a checkpoint names as next: its nodes, then its `Send`s."""
    if not checkpoint.sends:
        return checkpoint.next
    return (*checkpoint.next, *(Send(node, arg) for node, arg in checkpoint.sends))


def _pending_of(checkpoint: Checkpoint) -> dict[str, Mapping[str, Any]]:
    """The updates of a step's finished tasks, each with the `goto` it returned, if any."""
    pending = dict(checkpoint.pending)
    for task, targets in checkpoint.gotos.items():
        goto = tuple(t if type(t) is str else Send(*t) for t in targets)
        pending[task] = Routed(pending[task], goto)
    return pending


class Run:
    """Everything one run needs, passed explicitly instead of through a config dict."""

    __slots__ = ("answers", "asked", "checkpoint_id", "current", "durability", "gotos", "graph",
                 "hub", "node_id", "path", "pending", "run_id", "session_id", "stable",
                 "started_at", "state", "step_limit", "step_no", "steps", "store", "trace",
                 "traceparent", "usage", "writing")

    def __init__(
        self,
        graph: CompiledGraph,
        hub: EventHub,
        store: CheckpointStore | None,
        state: State,
        *,
        step_limit: int,
        parent: Checkpoint | None,
        durability: Durability = "sync",
        pricing: Pricing | None = None,
        asked: tuple[Interrupt, ...] | None = None,
        answers: dict[str, tuple[Any, ...]] | None = None,
    ) -> None:
        self.graph = graph
        self.hub = hub
        self.store = store
        self.run_id = hub.run_id
        self.session_id = hub.session_id
        self.state = state
        self.stable = state  # the state as last checkpointed (or given): what a failure keeps
        self.current: Step = ()  # the step in flight: what a resume runs again
        self.path = parent.path if parent is not None else ()  # the subgraph `current` is in
        # Updates of the current step's tasks that already finished (and were recorded), and
        # the answers to its interrupts, by task (`answers`: the parent's, with those of the
        # resume). A parent without `answers`: a `goto` chose another step, whose work is moot.
        self.pending: dict[str, Mapping[str, Any]] = (
            _pending_of(parent) if parent and answers is not None else {})
        self.answers: dict[str, tuple[Any, ...]] = answers if answers is not None else {}
        # The questions last asked (whose ids a task asking again keeps).
        # (`asked`: the parent's interrupts, when the caller has read them already.)
        self.asked: tuple[Interrupt, ...] = asked if asked is not None else (
            tuple(Interrupt.from_record(r) for r in parent.interrupts) if parent else ()
        )
        self.gotos: list[tuple[str, Step]] = []  # `Command(goto=...)`s of the step just run
        self.step_limit = step_limit
        self.durability = durability
        self.writing: asyncio.Future[None] | None = None  # an "async" checkpoint write
        self.steps = 0
        self.node_id = ""
        self.checkpoint_id = parent.id if parent is not None else None
        self.step_no = parent.step + 1 if parent is not None else 0
        self.started_at = time.time()
        # The session's totals so far: a resume goes on counting from its checkpoint's.
        self.usage = UsageLedger(pricing, parent.metadata.get(USAGE_KEY) if parent else None)
        self.trace: RunTrace | None = None  # the run's span, when tracing is on
        # The trace context its checkpoints keep: a later resume continues that trace.
        self.traceparent = _telemetry.stored_trace(parent)

    def result(
        self, status: RunStatus, next: Step = (), interrupts: tuple[Interrupt, ...] = ()
    ) -> RunState:
        return RunState(
            run_id=self.run_id, session_id=self.session_id, graph_id=self.graph.id,
            node_id=self.node_id, status=status, state=MappingProxyType(self.state),
            seq=self.hub.seq, started_at=self.started_at, updated_at=time.time(),
            next=node_ids(next), checkpoint_id=self.checkpoint_id, path=self.path,
            interrupts=interrupts, **usage_fields(self.usage),
        )


# `RunState`'s usage fields when nothing was spent, made once: as the defaults, they would
# build a `Usage` and two dicts for every result.
_NOTHING_SPENT: dict[str, Any] = {
    "usage": Usage(raw=MappingProxyType({})), "usage_by_node": MappingProxyType({}),
    "cost_by_node": MappingProxyType({}),
}


def usage_fields(ledger: UsageLedger) -> dict[str, Any]:
    """`RunState`'s usage and cost fields, from a ledger."""
    if not ledger.by_node:  # not `ledger`: its `__bool__` is a Python call
        return _NOTHING_SPENT
    return {"usage": ledger.total(), "usage_by_node": MappingProxyType(dict(ledger.by_node)),
            "cost": ledger.total_cost(),
            "cost_by_node": MappingProxyType(dict(ledger.cost_by_node))}

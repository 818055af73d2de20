"""`Runner`: run a compiled graph, stream its events, resume it from checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from chronos import _sync, _telemetry
from chronos.errors import (
    CheckpointNotFound,
    ConfigurationError,
    GraphError,
    RunConflictError,
    SessionCompletedError,
)
from chronos.graph._builder import CompiledGraph
from chronos.graph._command import Command, goto_targets
from chronos.graph._events import EventHub, EventStream, resolve_modes
from chronos.graph._execute import execute
from chronos.graph._interrupt import Interrupt, point_key, resolve_resume
from chronos.graph._log import log_end, log_start
from chronos.graph._plan import (
    Step,
    apply_updates,
    check_targets,
    entry_nodes,
    graph_at,
    interrupts_in,
)
from chronos.graph._run import Run, RunState, step_of, usage_fields
from chronos.graph._types import Durability, StreamMode
from chronos.graph._usage import USAGE_KEY, UsageLedger
from chronos.model import Pricing, genai_prices
from chronos.store import Checkpoint, CheckpointStore, SessionLeasing
from chronos.stream import BrokerProtocol

__all__ = ["Runner"]

_OUTCOMES_KEPT: Final = 1024  # failed or cancelled runs remembered for get_state
_NO_ANSWER: Final[Any] = object()  # `resume=` not given: None is a valid answer


class Runner:
    """Run a compiled graph, checkpointing after every step and streaming what happens.

    ```python
    runner = graph.Runner(compiled, store.from_url("sqlite:///runs.db"))
    events = runner.stream()                       # subscribe before the run
    async def consume():
        async for evt in events:
            print(f"[{evt.type}] node={evt.node_id}")
    result = (await asyncio.gather(consume(), runner.run("session-1", {"query": "hi"})))[1]
    ```

    A run ends completed, or paused before an interrupt node (`result.status == "paused"`;
    continue with `resume`). A failing node raises `NodeError` after a `failed` checkpoint;
    cancelling `run` cancels the node in flight and keeps the last checkpoint.

    Args:
        graph: from `StateGraph.compile()`.
        store: where checkpoints go; None runs without any (and without resume).
        broker: if given, every event is also published to it, the session id as topic
            (a run may narrow that to the types its readers want: `broker_events`).
        step_limit: the most steps one run may take; more raises `StepLimitError`.
        durability: when checkpoints are written, unless a run says otherwise: "sync" (after
            each step, before the next), "async" (after each step, while the next runs; a
            crash re-runs at most the steps whose write was under way), "exit" (only when
            the run pauses, fails or completes; a crash loses the whole run).
        prices: what a model call costs (`RunState.cost`): by default `model.genai_prices`
            (the `prices` extra; without it, no cost), or `model.Prices({...})` of your own,
            or any `(provider, model, usage) -> dollars | None`; None prices nothing.
    """

    def __init__(
        self,
        graph: CompiledGraph,
        store: CheckpointStore | None = None,
        broker: BrokerProtocol | None = None,
        *,
        step_limit: int = 1000,
        durability: Durability = "sync",
        prices: Pricing | None = genai_prices,
    ) -> None:
        self.graph = graph
        self.prices = prices
        self.store = store
        self.broker = broker
        self.step_limit = step_limit
        self.durability = durability
        self._lock = threading.Lock()  # guards subscriber lists, which other threads may change
        self._pending: list[EventStream] = []
        self._active: dict[str, Run] = {}
        self._claimed: set[str] = set()  # sessions held by a call of ours, running or about to
        self._outcomes: OrderedDict[str, RunState] = OrderedDict()
        # Asked once: a Protocol isinstance check walks the protocol's members every time.
        self._leases = store if isinstance(store, SessionLeasing) else None

    def stream(
        self,
        mode: StreamMode | Sequence[StreamMode] = "debug",
        *,
        session_id: str | None = None,
        buffer: int | None = None,
    ) -> EventStream:
        """Subscribe to the next run (or the one running): an async iterator of `StreamEvent`.

        The stream ends when that run completes, pauses, fails or is cancelled. Modes pick
        events, LangGraph's names for LangGraph's meanings: "values" a `values` event with
        the whole state (`evt.state`) for the input and after each step, "updates" each
        `node_end` (`evt.node_id` and the keys it changed in `evt.data`), "tasks" each
        `node_start`, `retry` and `node_end`, "checkpoints" each `checkpoint`, "messages"
        tokens, "custom" `emit()` events, "debug" every event but the `values` snapshots;
        all get the terminal event (an `interrupt` carries the run's questions).

        By default the reader gets every event, in order, once, however fast nodes emit.
        What it has not read yet waits in memory: events from async nodes without limit
        (about 200 bytes an event, 8 more for each further reader, plus the event's data: a
        million unread `emit()`s hold about 200 MB), while a sync node's `emit()` waits once
        a reader is 65,536 events behind. A reader that may stop reading should pass
        `buffer`: past that many unread events it misses the newest ones and is told by a
        `gap` event (`data` as an SSE subscriber's gap: `{"reason": "overflow", "missed",
        "first_id", "last_id"}`, the ids the missed events' `seq`), and the run never waits
        for it.

        Args:
            mode: one mode or several.
            session_id: only a run of this session; by default the next run of any session.
            buffer: at most this many unread events, then `gap` events; None: lose nothing.
        """
        capacity = None if buffer is None else max(buffer, 1)
        subscriber = EventStream(resolve_modes(mode), capacity, session_id)
        run = self._active.get(session_id) if session_id else None
        if run is None and session_id is None and self._active:
            run = list(self._active.values())[-1]
        if run is not None:
            run.hub.add(subscriber)
        else:
            with self._lock:
                self._pending.append(subscriber)
        return subscriber

    async def run(
        self,
        session_id: str,
        initial_state: Mapping[str, Any],
        *,
        durability: Durability | None = None,
        broker_events: Collection[str] | None = None,
    ) -> RunState:
        """Run the graph from its entry point on `initial_state`.

        `durability` overrides the runner's for this run (see `Runner`). `broker_events`: the
        event types (`StreamEvent.type`) this run publishes to the runner's broker; None, every
        type. Events of other types are not even built unless a `stream()` reader wants them:
        a run whose broker readers want no tokens (a server's `runs.wait`) skips a publish per
        token. Numbering is unchanged (`seq` never depends on who listens).

        Returns:
            The final `RunState`: "completed", or "paused" at an interrupt node.

        Raises:
            NodeError: a node (or a router) raised; the node's exception is the cause.
            StepLimitError: the run took more than `step_limit` steps.
            StateNotSerializable: the state cannot be checkpointed (naming the key).
            RunConflictError: the session is running already, in this runner or, with a
                store that leases sessions (SQLite and PostgreSQL across processes, memory
                within one), in any runner sharing the store.
        """
        state = dict(initial_state)
        async with self._lease(session_id):
            return await self._start(session_id, state, None, resumed=False, write_first=True,
                                     durability=durability, broker_events=broker_events)

    def run_sync(
        self,
        session_id: str,
        initial_state: Mapping[str, Any],
        *,
        durability: Durability | None = None,
    ) -> RunState:
        """`run` for synchronous code."""
        return _sync.run_sync(lambda: self.run(session_id, initial_state, durability=durability))

    async def resume(
        self,
        session_id: str,
        update: Mapping[str, Any] | Command | None = None,
        *,
        resume: Any = _NO_ANSWER,
        durability: Durability | None = None,
        broker_events: Collection[str] | None = None,
    ) -> RunState:
        """Continue a session from its latest checkpoint.

        ```python
        paused = await runner.run("s1", {"draft": "..."})       # a node called interrupt()
        done = await runner.resume("s1", resume="yes")          # ... and gets "yes" back
        ```

        A run paused by `graph.interrupt()` runs the nodes that asked again, their calls
        returning `resume` in turn: the answer to the one pending interrupt, or, when several
        are pending, `{interrupt_id: answer}` for some or all of them (`result.interrupts`
        lists them). A run paused before an interrupt node continues by executing it, after
        `update` is applied through the reducers (a human's answer, an approval). A run that
        crashed or failed runs the step that was in flight again; finished nodes never run
        twice. A completed session returns its final state without running anything; it takes
        no `update` or `goto` (`fork_from` continues it in a new session instead).

        Args:
            update: applied through the reducers first; or a `Command`, whose `update` is
                applied, `resume` answers, and `goto` names the step to run instead.
            resume: the answer(s) to the pending interrupt(s).
            durability: overrides the runner's for this run (see `Runner`).
            broker_events: the event types this run publishes to the broker (see `run`).

        Raises:
            CheckpointNotFound: the session has no checkpoint.
            InterruptNotFound: `resume` names an interrupt that is not pending, or does not
                say which of several it answers; nothing is changed.
            RunConflictError: the session is running already (see `run`).
            SessionCompletedError: `update` was given for a completed session.
        """
        if isinstance(update, Command):
            command = update if resume is _NO_ANSWER else Command(
                goto=update.goto, update=update.update, resume=resume)
        else:
            command = Command(update=update) if resume is _NO_ANSWER else Command(
                update=update, resume=resume)
        # Leased before reading: a run finishing elsewhere meanwhile cannot leave us resuming
        # from a checkpoint that is no longer the latest.
        async with self._lease(session_id):
            checkpoint = await self._store().latest(session_id)
            if checkpoint is None:
                raise CheckpointNotFound(session_id=session_id)
            return await self._continue(checkpoint, session_id, command, head=True,
                                        durability=durability, broker_events=broker_events)

    def resume_sync(
        self,
        session_id: str,
        update: Mapping[str, Any] | Command | None = None,
        *,
        resume: Any = _NO_ANSWER,
        durability: Durability | None = None,
    ) -> RunState:
        """`resume` for synchronous code."""
        return _sync.run_sync(
            lambda: self.resume(session_id, update, resume=resume, durability=durability))

    async def resume_from_checkpoint(
        self,
        checkpoint_id: str,
        update: Mapping[str, Any] | None = None,
        *,
        broker_events: Collection[str] | None = None,
        durability: Durability | None = None,
    ) -> RunState:
        """Time travel: continue the checkpoint's session from that point.

        Later checkpoints stay in the history; the new ones branch off this one (their
        `parent_id` chain leads back to it) and become the session's latest. `broker_events`:
        the event types this run publishes to the broker (see `run`); `durability` overrides
        the runner's for this run (see `Runner`).
        """
        checkpoint = await self._store().get(checkpoint_id)  # immutable: safe to read unleased
        async with self._lease(checkpoint.session_id):
            return await self._continue(checkpoint, checkpoint.session_id, update, head=False,
                                        broker_events=broker_events, durability=durability)

    async def fork_from(
        self,
        checkpoint_id: str,
        state_update: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> RunState:
        """Continue from a checkpoint in a new session, leaving the original history untouched.

        Args:
            checkpoint_id: where to fork.
            state_update: applied through the reducers before continuing.
            session_id: the new session's id; generated if not given (see the result's).
        """
        checkpoint = await self._store().get(checkpoint_id)
        new_session = session_id or f"{checkpoint.session_id}.fork-{uuid.uuid4().hex[:12]}"
        async with self._lease(new_session):
            return await self._continue(checkpoint, new_session, state_update, head=False)

    async def replay_from(self, checkpoint_id: str) -> RunState:
        """Re-stream a session's recorded history up to a checkpoint, then continue from it.

        Subscribers first get one `checkpoint` event per recorded checkpoint up to this one
        (`data` holds its id, `state` its state, `name` is "replay"), then the events of the
        continued run, as with `resume_from_checkpoint`.
        """
        checkpoint = await self._store().get(checkpoint_id)
        async with self._lease(checkpoint.session_id):
            history = await self._store().history(checkpoint.session_id)
            ids = [c.id for c in history]
            replayed = history[: ids.index(checkpoint_id) + 1] if checkpoint_id in ids else []
            return await self._continue(checkpoint, checkpoint.session_id, None, head=False,
                                        replay=replayed)

    async def list_checkpoints(self, session_id: str) -> list[Checkpoint]:
        """The session's checkpoints, oldest first."""
        return await self._store().history(session_id)

    async def _continue(
        self,
        checkpoint: Checkpoint,
        session_id: str,
        command: Command | Mapping[str, Any] | None,
        *,
        head: bool,
        replay: Sequence[Checkpoint] = (),
        durability: Durability | None = None,
        broker_events: Collection[str] | None = None,
    ) -> RunState:
        if checkpoint.graph_id != self.graph.id:
            raise GraphError(f"checkpoint {checkpoint.id!r} belongs to graph "
                             f"{checkpoint.graph_id!r}, not {self.graph.id!r}")
        if not isinstance(command, Command):
            command = Command(update=command)
        graph = graph_at(self.graph, checkpoint.path)
        unknown = [n for n in (*checkpoint.next, *(n for n, _ in checkpoint.sends))
                   if n not in graph.nodes]
        if unknown:
            raise GraphError(f"checkpoint {checkpoint.id!r} names unknown nodes {unknown}")
        if (command.update or command.goto) and (
                checkpoint.status == "completed" and session_id == checkpoint.session_id):
            raise SessionCompletedError(session_id, checkpoint.id)
        answers = dict(checkpoint.answers)
        asked = tuple(Interrupt.from_record(r) for r in checkpoint.interrupts)
        # Checked before anything runs: a wrong id changes nothing.
        given = resolve_resume(command.resume, asked) if command.has_resume else {}
        for question in asked:
            if question.point:  # any resume passes a static interrupt point
                answers[point_key(question.task, question.point)] = (given.get(question.id),)
            elif question.id in given:
                answers[question.task] = (*answers.get(question.task, ()), given[question.id])
        step: Step = step_of(checkpoint)
        goto = goto_targets(command.goto)
        if goto:
            step = check_targets(graph, goto, "resume")
        state = dict(checkpoint.state)
        if command.update:  # through the reducers of the (sub)graph the paused node belongs to
            state = apply_updates(graph, state, [command.update])
        # A new line of history (an update, an answer, a fork, time travel) starts with a
        # checkpoint of its own, so that a crash before the next step resumes on this line.
        write_first = (bool(command.update) or command.has_resume or bool(goto) or not head
                       or session_id != checkpoint.session_id)
        return await self._start(session_id, state, checkpoint, resumed=True,
                                 write_first=write_first, replay=replay, step=step,
                                 answers=None if goto else answers, durability=durability,
                                 asked=asked, broker_events=broker_events)

    async def _start(
        self,
        session_id: str,
        state: dict[str, Any],
        parent: Checkpoint | None,
        *,
        resumed: bool,
        write_first: bool,
        replay: Sequence[Checkpoint] = (),
        step: Step | None = None,
        answers: dict[str, tuple[Any, ...]] | None = None,
        durability: Durability | None = None,
        asked: tuple[Interrupt, ...] | None = None,
        broker_events: Collection[str] | None = None,
    ) -> RunState:
        mine: list[EventStream] = []
        if self._pending:  # read unlocked: a stream subscribed meanwhile waits for the next run
            with self._lock:
                mine = [s for s in self._pending
                        if s.session_id in (None, session_id) and not s.closed]
                self._pending = [s for s in self._pending if s not in mine and not s.closed]
        run_id = os.urandom(16).hex()  # uuid4().hex's shape, without its Python calls
        trace = _telemetry.start_run(self.graph.id, session_id, run_id, resumed=resumed,
                                     traceparent=_telemetry.stored_trace(parent))
        broker = self.broker
        if trace is not None and broker is not None:
            broker = trace.broker(broker)
        hub = EventHub(run_id, session_id, mine, broker, self._lock, broker_events)
        run = Run(self.graph, hub, self.store, state, step_limit=self.step_limit, parent=parent,
                  durability=durability or self.durability, pricing=self.prices, asked=asked,
                  answers=answers)
        if trace is not None:
            run.trace, run.traceparent = trace, trace.traceparent
        status = "failed"
        self._active[session_id] = run
        self._outcomes.pop(session_id, None)
        log_start(run, resumed=resumed)
        try:
            if trace is not None:
                trace.enter()
            for old in replay:
                hub.publish("checkpoint", old.ran[-1] if old.ran else "", state=old.state,
                            data=old.id, name="replay")
            if step is None:
                step = entry_nodes(self.graph, state)
            result = await execute(run, step, resumed=resumed, write_first=write_first)
            status = result.status
            log_end(run, status)
            return result
        except asyncio.CancelledError:
            status = "cancelled"
            self._remember(run.result("cancelled", run.current))
            log_end(run, "cancelled")
            # A no-op when the run ended its streams itself; here for a failure before it ran.
            hub.end("cancelled", run.node_id, state=run.stable, error="cancelled")
            raise
        except Exception as exc:
            self._remember(run.result("failed", run.current))
            log_end(run, "failed", exc)
            hub.end("error", run.node_id, state=run.stable, error=str(exc))
            raise
        finally:
            del self._active[session_id]
            if trace is not None:  # the run's own error, as it leaves: exc_info is in scope here
                trace.end(status, run.steps, None if status == "completed" or status == "paused"
                          else sys.exc_info()[1])

    async def get_state(self, session_id: str) -> RunState | None:
        """Where the session stands: running here, or as its run ended, or as last checkpointed.

        A session whose latest checkpoint says "running" but which no runner is executing
        crashed or was cancelled elsewhere; `resume` continues it. Read from a checkpoint,
        `seq` is 0 and `run_id` is that of the run that wrote it.
        """
        run = self._active.get(session_id)
        if run is not None:
            return run.result("running", run.current)
        if session_id in self._outcomes:
            return self._outcomes[session_id]
        checkpoint = await self.store.latest(session_id) if self.store is not None else None
        if checkpoint is None:
            return None
        node_id = checkpoint.ran[-1] if checkpoint.ran else ""
        interrupts = tuple(Interrupt.from_record(r) for r in checkpoint.interrupts)
        if interrupts:
            node_id = interrupts[0].node_id
        elif checkpoint.status == "paused":  # before an interrupt node, or after `node_id`
            before = interrupts_in(graph_at(self.graph, checkpoint.path), checkpoint.next)
            node_id = before[0] if before else node_id
        return RunState(
            run_id=checkpoint.run_id, session_id=session_id, graph_id=checkpoint.graph_id,
            node_id=node_id, status=checkpoint.status, state=MappingProxyType(checkpoint.state),
            seq=0, started_at=checkpoint.created_at, updated_at=checkpoint.created_at,
            next=(*checkpoint.next, *(n for n, _ in checkpoint.sends)),
            checkpoint_id=checkpoint.id, path=checkpoint.path, interrupts=interrupts,
            **usage_fields(UsageLedger(None, checkpoint.metadata.get(USAGE_KEY))),
        )

    def _remember(self, outcome: RunState) -> None:
        self._outcomes[outcome.session_id] = outcome
        while len(self._outcomes) > _OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)

    def _lease(self, session_id: str) -> _Claim:
        """Claim the session for one run, before anything is read: RunConflictError if taken.

        The runner's own claim is checked and taken in one step, with no await in between,
        so two calls racing here cannot both pass; the store's lease then excludes other
        runners and processes. Taken once per run, never per step.
        """
        return _Claim(self, session_id)

    def _store(self) -> CheckpointStore:
        if self.store is None:
            raise ConfigurationError("this Runner has no store: pass one to resume or fork")
        return self.store


class _Claim:
    """`Runner._lease`: a class, not a generator context manager, as it is taken per run."""

    __slots__ = ("_lease", "_runner", "_session_id")

    def __init__(self, runner: Runner, session_id: str) -> None:
        self._runner = runner
        self._session_id = session_id
        self._lease: contextlib.AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> None:
        runner, session_id = self._runner, self._session_id
        with runner._lock:
            if session_id in runner._claimed:
                raise RunConflictError(session_id)
            runner._claimed.add(session_id)
        try:
            if runner._leases is not None:
                lease = runner._leases.lease(session_id)
                await lease.__aenter__()
                self._lease = lease
        except BaseException:
            self._give_back()
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            if self._lease is not None:
                await self._lease.__aexit__(*exc_info)
        finally:
            self._give_back()

    def _give_back(self) -> None:
        with self._runner._lock:
            self._runner._claimed.discard(self._session_id)

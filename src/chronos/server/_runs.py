"""Runs: start them on a thread (by multitask strategy), execute them, cancel them.

Each run executes in a task this object owns (`aclose` cancels and awaits them all, so none
outlives the app) through the assistant's `graph.Runner`, whose events go to the broker with
the thread id as topic. Before and after the runner, the manager publishes `run_start` and
`run_end` markers to the same topic: streams and joins, here or in another process, follow a
run between its markers, and every stream ends, even when the runner never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from chronos.errors import CheckpointNotFound
from chronos.graph import Command, CompiledGraph, Runner, RunState, append, merge
from chronos.graph._plan import apply_updates, entry_nodes, node_ids
from chronos.server._assistants import Assistants, ServedGraph
from chronos.server._errors import ApiError
from chronos.server._run_request import RunRequest
from chronos.server._state import iso
from chronos.server._stream_modes import RUN_END, RUN_START
from chronos.server._threads import ThreadRecord, Threads
from chronos.store import Checkpoint
from chronos.stream import BrokerProtocol, Event

__all__ = ["RunRecord", "Runs"]

_MAX_QUEUED: Final = 100  # runs enqueued on one thread; more are refused (409)


@dataclass
class RunRecord:
    run_id: str
    thread: ThreadRecord
    served: ServedGraph
    request: RunRequest
    created_at: float
    status: str = "pending"  # running, success, error, interrupted
    updated_at: float = 0.0
    values: Any = None  # the thread's values when the run ended
    error: str = ""
    error_type: str = ""
    base: Checkpoint | None = None  # what the run started from: where a rollback returns
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "thread_id": self.thread.thread_id,
                "assistant_id": self.served.assistant_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at or self.created_at), "status": self.status,
                "metadata": self.request.metadata,
                "multitask_strategy": self.request.multitask_strategy,
                "kwargs": self.request.kwargs()}

    def result(self) -> Any:
        """What `runs.wait` and `runs.join` answer: the final values, or the error."""
        if self.status == "error":
            return {"__error__": {"error": self.error_type, "message": self.error}}
        return self.values


@dataclass(frozen=True, slots=True)
class _Rollback:
    """Runs were rolled back: the next one starts from `to` (None: from nothing)."""

    to: Checkpoint | None


class Runs:
    def __init__(self, assistants: Assistants, threads: Threads, broker: BrokerProtocol) -> None:
        self.assistants = assistants
        self.threads = threads
        self.broker = broker
        self.records: dict[str, RunRecord] = {}
        self._by_thread: dict[str, list[RunRecord]] = {}  # unfinished runs, oldest first
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, thread_id: str, run_id: str) -> RunRecord:
        record = self.records.get(run_id)
        if record is None or record.thread.thread_id != thread_id:
            raise ApiError(404, f"Run with ID {run_id} not found")
        return record

    def of_thread(self, thread_id: str) -> list[RunRecord]:
        return sorted((r for r in self.records.values() if r.thread.thread_id == thread_id),
                      key=lambda r: -r.created_at)

    async def start(self, thread: ThreadRecord, request: RunRequest) -> RunRecord:
        """Start (or enqueue) a run on `thread`, applying its multitask strategy.

        Raises:
            ApiError: 404 unknown assistant or checkpoint, 409 a busy thread under "reject"
                (or a full queue), 422 a bad interrupt node.
        """
        served = self.assistants.find(request.assistant_id)
        runner = self.assistants.runner(served, request.interrupt_before)
        if request.checkpoint_id is not None:
            await self.threads.checkpoint(thread.thread_id, request.checkpoint_id)
        busy = [r for r in self._by_thread.get(thread.thread_id, []) if not r.done.is_set()]
        rollback: _Rollback | None = None
        if busy:
            strategy = request.multitask_strategy
            if strategy == "reject":
                raise ApiError(409, "Thread is already running a task. Wait for it to finish "
                                    "or choose a different multitask strategy.")
            if strategy == "enqueue" and len(busy) >= _MAX_QUEUED:
                raise ApiError(409, f"Thread has {_MAX_QUEUED} runs queued already")
            if strategy in ("interrupt", "rollback"):
                rollback = _Rollback(busy[0].base) if strategy == "rollback" else None
                await self._cancel_all(busy)
                if strategy == "rollback":
                    for old in busy:
                        self.records.pop(old.run_id, None)
                busy = []
        thread.metadata.setdefault("graph_id", served.graph_id)
        thread.metadata.setdefault("assistant_id", served.assistant_id)
        record = RunRecord(str(uuid.uuid4()), thread, served, request, time.time())
        self.records[record.run_id] = record
        self._by_thread.setdefault(thread.thread_id, []).append(record)
        waits_for = busy[-1] if busy else None
        task = asyncio.create_task(self._execute(record, runner, waits_for, rollback))
        record.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    def start_cancel(self, record: RunRecord, *, action: str = "interrupt") -> None:
        """Begin cancelling a pending or running run; "rollback" also forgets it."""
        if record.task is not None and not record.done.is_set():
            record.task.cancel()
        if action == "rollback":
            self.records.pop(record.run_id, None)

    async def cancel(self, record: RunRecord, *, action: str = "interrupt") -> None:
        """Cancel a run and wait until it has ended."""
        self.start_cancel(record, action=action)
        await record.done.wait()

    async def cancel_thread(self, thread_id: str) -> None:
        await self._cancel_all([r for r in self._by_thread.get(thread_id, [])
                                if not r.done.is_set()])

    async def _cancel_all(self, records: list[RunRecord]) -> None:
        for record in records:
            self.start_cancel(record)
        for record in records:
            await record.done.wait()

    async def aclose(self) -> None:
        """Cancel every run and wait for their tasks."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(self, record: RunRecord, runner: Runner, waits_for: RunRecord | None,
                       rollback: _Rollback | None) -> None:
        thread = record.thread
        try:
            if record.request.after_seconds:
                await asyncio.sleep(record.request.after_seconds)
            if waits_for is not None:
                await waits_for.done.wait()
            record.status = "running"
            thread.active_run = record.run_id
            result = await self._call(record, runner, rollback)
            record.values = _plain(dict(result.state))
            record.status = "success"
        except asyncio.CancelledError:
            record.status = "interrupted"
            latest = await _quietly_latest(self.threads, thread.thread_id)
            record.values = _plain(dict(latest.state)) if latest is not None else None
        except Exception as exc:
            record.status = "error"
            record.error_type = type(exc).__name__
            record.error = str(exc)
        finally:
            record.updated_at = time.time()
            if thread.active_run == record.run_id:
                thread.active_run = None
            thread.updated_at = record.updated_at
            queue = self._by_thread.get(thread.thread_id, [])
            if record in queue:
                queue.remove(record)
            self._publish(RUN_END, record, {"status": record.status, "error": record.error,
                                            "error_type": record.error_type})
            record.done.set()
            if thread.temporary:
                self.threads.records.pop(thread.thread_id, None)

    async def _call(self, record: RunRecord, runner: Runner, rollback: _Rollback | None
                    ) -> RunState:
        request = record.request
        thread_id = record.thread.thread_id
        graph = runner.graph
        store = self.threads.store
        if request.checkpoint_id is not None:
            base: Checkpoint | None = await store.get(request.checkpoint_id)
        elif rollback is not None:
            base = rollback.to
        else:
            base = await store.latest(thread_id)
        record.base = base
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
            self._publish(RUN_START, record, {"before": before, "values": state,
                                              "next": list(_entry_or_none(graph, state))})
            return await runner.run(thread_id, state)
        if base is None:
            raise CheckpointNotFound(session_id=thread_id)
        self._publish(RUN_START, record, {"before": base.state, "next": list(base.next),
                                          "values": apply_updates(graph, base.state, [update])})
        if rollback is not None or request.checkpoint_id is not None:
            return await runner.resume_from_checkpoint(base.id, update or None)
        command = Command(goto=request.goto, update=update or None, **resume)
        return await runner.resume(thread_id, command)

    def _publish(self, type: str, record: RunRecord, data: dict[str, Any]) -> None:
        payload = _plain({"run_id": record.run_id, **data})
        with contextlib.suppress(Exception):  # a broker failure must not lose the run's outcome
            self.broker.publish(Event(type, payload), record.thread.thread_id)


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


def _plain(value: Any) -> Any:
    """JSON-ready: what JSON cannot carry is shown by its repr, as the runner's events do."""
    return orjson.loads(orjson.dumps(value, default=repr))


async def _quietly_latest(threads: Threads, thread_id: str) -> Checkpoint | None:
    try:
        return await threads.store.latest(thread_id)
    except Exception:
        return None

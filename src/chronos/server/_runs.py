"""Runs: start them on a thread (by multitask strategy), execute them, wait for them, cancel
them, from any server process.

Each run executes in a task of the process that started it (`aclose` cancels and awaits
them all, so none outlives the app) through the assistant's `graph.Runner`, whose events go
to the broker with the thread id as topic. Before and after the runner, the manager publishes
`run_start` and `run_end` markers to the same topic, and it keeps the run's record (status,
result) in the shared `Records`. So any process can find a run, wait for its `run_end`, and
stream it; a cancel for a run executing elsewhere travels as a message on the broker's
control topic, which every process follows.

A process that dies (SIGKILL, a crash, the machine) cannot end its runs. Each process renews a
heartbeat in the records, and lists its unfinished runs in the `active-runs` collection; every
process checks that list each few seconds (and any run it reads) and fails the runs of a
process whose heartbeat has run out (status `error`, error `ServerProcessGone`, a `run_end`
marker for the streams following them), so they never stay `running` and their threads take
new runs. LangGraph's server does the same for a worker that dies; it may also retry the run,
which Chronos leaves to the client (the thread's checkpoints are intact: `runs.create` with
`input=None` continues from the last one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson

from chronos import _telemetry
from chronos.errors import RequestRefused
from chronos.graph import Runner, RunState, UsageLedger
from chronos.model import Usage
from chronos.server._assistants import Assistants, ServedGraph
from chronos.server._log import survived
from chronos.server._metrics import ServerMetrics
from chronos.server._record_limits import Retention, runs_beyond, threads_beyond
from chronos.server._records import Records
from chronos.server._run_record import RunInfo, RunRecord
from chronos.server._run_request import RunRequest
from chronos.server._run_start import call_runner
from chronos.server._stream_modes import RUN_END, RUN_START
from chronos.server._threads import ThreadRecord, Threads
from chronos.store import Checkpoint
from chronos.stream import Broker, BrokerProtocol, Event, Subscription

__all__ = ["Runs"]

_MAX_QUEUED: Final = 100  # runs enqueued on one thread; more are refused (409)
_CONTROL_TOPIC: Final = "chronos-server-control"
_CANCEL: Final = "cancel_run"
_RECHECK_SECONDS: Final = 5.0  # how often a wait re-reads a run executing elsewhere
_ALIVE_SECONDS: Final = 10.0  # a process whose heartbeat is older is gone
_BEAT_SECONDS: Final = 2.0  # how often a process renews its heartbeat and checks the others'
_ACTIVE: Final = "active-runs"  # run id -> {"run_id", "thread_id", "owner"}, while unfinished


@dataclass(frozen=True, slots=True)
class _Rollback:
    """Runs were rolled back: the next one starts from `to` (None: from nothing)."""

    to: Checkpoint | None


class Runs:
    def __init__(self, assistants: Assistants, threads: Threads, broker: BrokerProtocol,
                 records: Records, metrics: ServerMetrics, retention: Retention) -> None:
        self.assistants = assistants
        self.metrics = metrics
        self.threads = threads
        self.broker = broker
        self.records = records
        self.retention = retention
        self.owner = uuid.uuid4().hex  # this process, in the records
        self._local: dict[str, RunRecord] = {}  # the unfinished runs this process executes
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Declare this process alive and keep it so; follow the control topic, to cancel runs
        of this process asked for elsewhere."""
        await self.records.beat(self.owner, _ALIVE_SECONDS)
        await self._reap()  # a process restarted in place of one killed: its runs end now
        subscription = self.broker.subscribe(f"run-control-{uuid.uuid4().hex}",
                                             [_CONTROL_TOPIC])
        self._background = [asyncio.create_task(self._follow_control(subscription)),
                            asyncio.create_task(self._keep_alive()),
                            asyncio.create_task(self._keep_bounded())]

    async def _keep_bounded(self) -> None:
        while True:
            await asyncio.sleep(self.retention.sweep_seconds)
            with survived("retention sweep"):  # Redis away for a moment: the next sweep
                await self.sweep()

    async def sweep(self) -> None:
        """Forget the threads beyond the retention's bounds (see `Retention`)."""
        for thread_id in threads_beyond(await self.threads.all(), self.retention, time.time()):
            await self.delete_thread(thread_id)

    async def _forget_old_runs(self, thread_id: str) -> None:
        for run in runs_beyond(await self.of_thread(thread_id), self.retention.runs_per_thread):
            await self.records.delete(_runs_of(thread_id), run.run_id)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(_BEAT_SECONDS)
            with survived("heartbeat"):  # Redis away for a moment: the next beat
                await self.records.beat(self.owner, _ALIVE_SECONDS)
                await self._reap()

    async def _reap(self) -> None:
        """Fail the unfinished runs of processes that are gone."""
        gone: dict[str, bool] = {}
        for where in await self.records.values(_ACTIVE):
            owner = where["owner"]
            if owner == self.owner:
                continue
            if owner not in gone:
                gone[owner] = not await self.records.alive(owner)
            if gone[owner]:
                with contextlib.suppress(RequestRefused):  # its thread was deleted meanwhile
                    await self.get(where["thread_id"], where["run_id"])  # fails it
                await self.records.delete(_ACTIVE, where["run_id"])

    async def _checked(self, value: dict[str, Any]) -> RunInfo:
        """The run as stored; failed first if the process executing it is gone."""
        run = RunInfo.from_json(value)
        if run.finished or run.run_id in self._local or await self.records.alive(run.owner):
            return run
        orphaned = run.orphaned(time.time())
        await self.records.put(_runs_of(run.thread_id), run.run_id, orphaned)
        await self.records.delete(_ACTIVE, run.run_id)
        await self.threads.set_active(run.thread_id, None, unless=run.run_id)
        error = orphaned["result"]["__error__"]
        with survived("orphaned run's end marker", run=run.run_id):
            self.broker.publish(Event(RUN_END, {"run_id": run.run_id, "status": "error",
                                                "error": error["message"],
                                                "error_type": error["error"]}), run.thread_id)
        return RunInfo.from_json(orphaned)

    async def _follow_control(self, subscription: Subscription) -> None:
        async with subscription:
            async for event in subscription:
                data = event.data if isinstance(event.data, dict) else {}
                local = self._local.get(str(data.get("run_id")))
                if event.type == _CANCEL and local is not None:
                    self._cancel_local(local, str(data.get("action")))

    async def get(self, thread_id: str, run_id: str) -> RunInfo:
        value = await self.records.get(_runs_of(thread_id), run_id)
        if value is None:
            raise RequestRefused(404, f"Run with ID {run_id} not found")
        return await self._checked(value)

    async def of_thread(self, thread_id: str) -> list[RunInfo]:
        """The thread's runs, newest first."""
        found = [await self._checked(v) for v in await self.records.values(_runs_of(thread_id))]
        return sorted(found, key=lambda r: -r.created_at)

    async def start(self, thread: ThreadRecord, request: RunRequest, *,
                    traceparent: str = "", keep_paused: bool = False,
                    unseen: bool = False) -> RunRecord:
        """Start (or enqueue) a run on `thread`, applying its multitask strategy.

        `traceparent` is the caller's W3C trace context (its request's header): when tracing
        is on, the run's span is a child of it. `keep_paused`: a stateless run's thread is kept
        while the run is paused (until a run that answers it ends), for a dialect that resumes
        it by the thread's id. `unseen`: the thread was made for this run (`Threads.new`,
        not saved) and its id told to no one, so it has no runs to read, and nothing can look
        for the run or its thread while it runs: neither is recorded unless the run outlives
        its end (paused and kept), nor is a record written while it runs. (Each is a round
        trip with Redis records, five of them on the model's way.)

        Raises:
            RequestRefused: 404 unknown assistant or checkpoint, 409 a busy thread under "reject"
                (or a full queue), 422 a bad interrupt node.
        """
        served = self.assistants.find(request.assistant_id)
        runner = self.assistants.runner(served, request.interrupt_before,
                                        request.interrupt_after)
        if request.checkpoint_id is not None:
            await self.threads.checkpoint(thread.thread_id, request.checkpoint_id)
        # An unseen thread was made for this run: it has no runs to read.
        earlier = [] if unseen else await self.of_thread(thread.thread_id)
        busy = [r for r in earlier if not r.finished]
        rollback: _Rollback | None = None
        if busy:
            strategy = request.multitask_strategy
            if strategy == "reject":
                raise RequestRefused(409, "Thread is already running a task. Wait for it to finish "
                                    "or choose a different multitask strategy.")
            if strategy == "enqueue" and len(busy) >= _MAX_QUEUED:
                raise RequestRefused(409, f"Thread has {_MAX_QUEUED} runs queued already")
            if strategy in ("interrupt", "rollback"):
                if strategy == "rollback":
                    rollback = await self._rollback_point(busy[-1])
                for old in busy:
                    await self.cancel(old, action=strategy)
                busy = []
        if "graph_id" not in thread.metadata:
            thread.metadata.update(graph_id=served.graph_id, assistant_id=served.assistant_id)
            await self.threads.save(thread)
        record = RunRecord(str(uuid.uuid4()), thread.thread_id, thread.temporary, served,
                           request, time.time(), self.owner, keep_paused=keep_paused,
                           trace=await self._trace(served, thread.thread_id, request, traceparent))
        self._local[record.run_id] = record
        waits_for = busy[0] if busy else None  # the newest: it waits for the older ones
        if not unseen:
            await self._save(record)
            await self.records.put(_ACTIVE, record.run_id, {"run_id": record.run_id,
                                                            "thread_id": record.thread_id,
                                                            "owner": self.owner})
        # A stateless run's new thread has no checkpoint to read (only runs write them).
        fresh = thread.temporary and not earlier
        task = asyncio.create_task(self._execute(record, runner, waits_for, rollback, fresh,
                                                 thread if unseen else None))
        record.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    async def _trace(self, served: ServedGraph, thread_id: str, request: RunRequest,
                     traceparent: str) -> _telemetry.RunTrace | None:
        """The run's span, started now so that its streams can tell clients its trace context
        from their first event; None when tracing is off.

        Its parent is the caller's `traceparent` if it sent one; else a resume continues the
        trace of the checkpoint it resumes, as the runner does (a queued run's, the latest now).
        """
        if _telemetry.tracer() is None:
            return None
        if not traceparent and request.input is None:
            store = self.threads.store
            base = (await store.get(request.checkpoint_id) if request.checkpoint_id is not None
                    else await store.latest(thread_id))
            traceparent = _telemetry.stored_trace(base)
        return _telemetry.begin_run(served.graph_id, thread_id, traceparent=traceparent)

    async def _rollback_point(self, oldest: RunInfo) -> _Rollback | None:
        if oldest.status == "pending":  # never started: the thread is as it was
            return None
        if oldest.base_checkpoint_id is None:
            return _Rollback(None)
        return _Rollback(await self.threads.store.get(oldest.base_checkpoint_id))

    async def finished(self, run: RunInfo) -> None:
        """Wait until the run has ended, wherever it executes."""
        local = self._local.get(run.run_id)
        if local is not None:
            await local.done.wait()
            return
        topic = run.thread_id
        async with self.broker.subscribe(f"run-wait-{uuid.uuid4().hex}", [topic]) as waiting:
            while True:
                current = await self.records.get(_runs_of(run.thread_id), run.run_id)
                if current is None or (await self._checked(current)).finished:
                    return
                batch = await waiting.receive_batch(timeout=_RECHECK_SECONDS)
                if waiting.closed:
                    return
                for event in batch:
                    if event.type == RUN_END and isinstance(event.data, dict) and \
                            event.data.get("run_id") == run.run_id:
                        return

    def request_cancel(self, run: RunInfo, *, action: str = "interrupt") -> None:
        """Begin cancelling a run, here or through the control topic; "rollback" also
        forgets it."""
        local = self._local.get(run.run_id)
        if local is not None:
            self._cancel_local(local, action)
            return
        with survived("cancel request", run=run.run_id):
            self.broker.publish(Event(_CANCEL, {"run_id": run.run_id, "action": action}),
                                _CONTROL_TOPIC)

    def _cancel_local(self, record: RunRecord, action: str) -> None:
        if action == "rollback":
            record.forgotten = True
        if record.task is not None and not record.done.is_set():
            record.task.cancel()

    async def cancel(self, run: RunInfo, *, action: str = "interrupt") -> None:
        """Cancel a run and wait until it has ended (a finished one is only forgotten on
        "rollback")."""
        self.request_cancel(run, action=action)
        await self.finished(run)
        if action == "rollback":
            await self.records.delete(_runs_of(run.thread_id), run.run_id)

    async def delete_thread(self, thread_id: str) -> None:
        """Cancel a thread's runs, then forget them, the thread and its checkpoints (as
        LangGraph's delete does: a thread created again with the same id starts empty)."""
        for run in await self.of_thread(thread_id):
            if not run.finished:
                await self.cancel(run)
        await self.records.drop(_runs_of(thread_id))
        await self.threads.remove(thread_id)
        await self.threads.store.delete_session(thread_id)

    async def aclose(self) -> None:
        """Stop following the control topic; cancel every run here and wait for them."""
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _save(self, record: RunRecord) -> None:
        if not record.forgotten:
            await self.records.put(_runs_of(record.thread_id), record.run_id, record.to_json())

    async def _execute(self, record: RunRecord, runner: Runner, waits_for: RunInfo | None,
                       rollback: _Rollback | None, fresh: bool,
                       unsaved: ThreadRecord | None) -> None:
        """Run it. `unsaved`: the run's thread, unseen and not recorded (see `start`); it and
        the run are recorded at the end only if the run stays paused on it."""
        thread_id = record.thread_id
        started: float | None = None
        paused = False
        failure: BaseException | None = None
        result: RunState | None = None
        parent: Checkpoint | None = None  # what the run's usage totals start from
        began = time.time()
        try:
            if record.request.after_seconds:
                await asyncio.sleep(record.request.after_seconds)
            if waits_for is not None:
                await self.finished(waits_for)
            record.status = "running"
            started = time.monotonic()
            self.metrics.running(+1)
            if unsaved is None:
                await self._save(record)
                await self.threads.set_active(thread_id, record.run_id)
            request = record.request
            base: Checkpoint | None
            if request.checkpoint_id is not None:
                base = await self.threads.store.get(request.checkpoint_id)
            elif rollback is not None:
                base = rollback.to
            elif fresh:
                base = None
            else:
                base = await self.threads.store.latest(thread_id)
            record.base_checkpoint_id = base.id if base is not None else None
            if record.trace is not None:
                _telemetry.hand_over(record.trace)
            parent = base if request.input is None else None  # new input: new totals
            began = time.time()
            result = await call_runner(
                runner, thread_id, request, base,
                from_base=rollback is not None or request.checkpoint_id is not None,
                announce=lambda data: self._publish(
                    RUN_START, record, {**data, "graph_id": record.served.graph_id}))
            record.values = _plain(dict(result.state))
            record.status = "success"
            paused = result.status == "paused"
        except asyncio.CancelledError:
            record.status = "interrupted"
            with survived("interrupted run's values", run=record.run_id):
                latest = await self.threads.store.latest(thread_id)
                record.values = _plain(dict(latest.state)) if latest is not None else None
        except Exception as exc:
            record.status = "error"
            record.error_type = type(exc).__name__
            record.error = str(exc)
            failure = exc
        finally:
            if record.trace is not None:  # ended already, unless no runner took it
                record.trace.end(record.status, 0, failure)
            if started is not None:
                self.metrics.running(-1)
                self.metrics.run_ended(record.status, time.monotonic() - started)
                with survived("run's token count", run=record.run_id):
                    await self._count_tokens(runner, thread_id, result, parent, began)
            record.updated_at = time.time()
            kept = record.temporary and paused and record.keep_paused
            # The end marker must go out regardless.
            with survived("run record at its end", run=record.run_id):
                if unsaved is None:
                    await self.threads.set_active(thread_id, None, unless=record.run_id)
                    await self._save(record)
                    await self.records.delete(_ACTIVE, record.run_id)
                    await self._forget_old_runs(thread_id)
                elif kept:  # it outlives its end: a dialect resumes it by the thread's id
                    await self.threads.save(unsaved)
                    await self._save(record)
            self._publish(RUN_END, record, {"status": record.status, "error": record.error,
                                            "error_type": record.error_type})
            self._local.pop(record.run_id, None)
            record.done.set()
            if record.temporary and not kept:
                # A stateless run's thread, record and checkpoints go with it.
                with survived("stateless run's cleanup", run=record.run_id):
                    if unsaved is None:
                        await self.records.drop(_runs_of(thread_id))
                        await self.threads.remove(thread_id)
                    await self.threads.store.delete_session(thread_id)

    async def _count_tokens(self, runner: Runner, thread_id: str, result: RunState | None,
                            parent: Checkpoint | None, began: float) -> None:
        """Count the model tokens a run spent: its totals (its result's, or as the runner
        remembers a run that failed or was cancelled), less those of the checkpoint it
        continued from. Counted once per run, not from each token's event, which a run
        publishes only when its stream modes stream tokens."""
        state = result if result is not None else await runner.get_state(thread_id)
        if state is None or state.started_at < began:  # the runner never started it
            return
        spent = state.usage
        before = UsageLedger.recorded(parent.metadata).total() if parent is not None else Usage()
        self.metrics.tokens((spent.input_tokens or 0) - (before.input_tokens or 0),
                            (spent.output_tokens or 0) - (before.output_tokens or 0))

    def _publish(self, type: str, record: RunRecord, data: dict[str, Any]) -> None:
        marker = {"run_id": record.run_id, **data}
        payload: Any
        if isinstance(self.broker, Broker):
            # The in-process broker encodes with orjson, which takes a Fragment as it is: the
            # marker is encoded once, as `_plain` encodes, rather than encoded, decoded and
            # encoded again (`run_start` carries the thread's values twice). Another broker
            # gets it decoded.
            payload = orjson.Fragment(orjson.dumps(marker, default=repr))
        else:
            payload = _plain(marker)
        # A broker failure must not lose the run's outcome.
        with survived(f"{type} marker", run=record.run_id):
            self.broker.publish(Event(type, payload), record.thread_id)


def _runs_of(thread_id: str) -> str:
    """The collection of a thread's run records."""
    return f"runs:{thread_id}"


def _plain(value: Any) -> Any:
    """JSON-ready: what JSON cannot carry is shown by its repr, as the runner's events do."""
    return orjson.loads(orjson.dumps(value, default=repr))

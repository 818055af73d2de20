"""The glue every dialect needs: start a run, and read its events in order until it ends.

```python
run = await start_run(runs, request, "agent", {"messages": [...]})
try:
    async for batch in run.batches():
        for event in batch:          # graph events: node_start, token, custom, node_end...
            ...
    print(run.end.status, run.values)
finally:
    await run.aclose()               # a client gone before the end: on_disconnect applies
```

The broker subscription opens before the run starts (as `/runs/stream` does), so no event is
missed; the run starts through `Runs.start`, the one way runs start. `sse_response` makes a
dialect's frames the run's response, counted in the server's metrics as every run stream is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import StreamingResponse

from chronos.server._metrics import ServerMetrics
from chronos.server._run_record import RunInfo, RunRecord
from chronos.server._run_request import parse_run_request
from chronos.server._runs import Runs
from chronos.server._stream import (
    HEARTBEAT_SECONDS,
    StreamInRequestTask,
    open_subscription,
    trace_headers,
)
from chronos.server._stream_modes import RUN_END, RUN_START
from chronos.stream import GAP, Event, Subscription

__all__ = ["RunEnd", "RunSource", "join_run", "sse_response", "start_run"]

# How far before a run's creation a join replays from. Event ids are their broker's clock in
# milliseconds; a wider margin would reach back before an in-process broker started, which it
# answers with an "expired" gap. (Redis's ids are the Redis server's clock: one behind this
# host's by more than a run takes to start makes a join miss the start, and show the answer
# whole, see `missed_start`.)
_CLOCK_MARGIN_MS: Final = 1
# The modes a dialect's run is started with: a run publishes only what its modes need, and a
# dialect reads the graph events whole, its tokens and custom events too.
_MODES: Final = ["values", "updates", "messages-tuple", "custom"]


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, from its `run_end` marker: "success", "error" or "interrupted"."""

    status: str
    error: str = ""
    error_type: str = ""


class RunSource:
    """One started run's events, read from a subscription opened before it started.

    `start` is the `run_start` marker's data (the values the run starts from) once seen;
    `end` is set once the run has ended. A joined run whose start the broker's replay no
    longer held (its replay window had passed it) shows none of its events and ends with
    `missed_start` set: its outcome is then only in `final_state()`. A replay that begins
    with a `GAP` (events expired) may have lost the run's first tokens: the `GAP` is then
    given right after the run's start.
    """

    def __init__(self, runs: Runs, record: RunRecord | RunInfo, subscription: Subscription, *,
                 cancel_on_disconnect: bool) -> None:
        self.runs = runs
        self.record = record
        self.subscription = subscription
        self.start: Mapping[str, Any] | None = None
        self.end: RunEnd | None = None
        self.missed_start = False
        self._gap: Event | None = None  # one that came before the run's start
        self._cancel_on_disconnect = cancel_on_disconnect

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def thread_id(self) -> str:
        return self.record.thread_id

    @property
    def headers(self) -> dict[str, str]:
        """Headers its responses add: the run's trace context, when traced."""
        return trace_headers(self.record.traceparent)

    @property
    def values(self) -> Any:
        """The thread's values when the run ended (None before)."""
        return self.record.values if isinstance(self.record, RunRecord) else None

    async def batches(self, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[list[Event]]:
        """The run's events in order, in batches as they arrive, without the run markers; an
        empty batch when nothing came for `heartbeat` seconds (time for a keep-alive). Ends
        after the run's end, or if the subscription closes first (`end` is then None).

        A `stream.GAP` event stands where a too slow reader lost events.
        """
        subscription = self.subscription
        while self.end is None:
            batch = await subscription.receive_batch(timeout=heartbeat)
            if not batch and subscription.closed:
                return
            out: list[Event] = []
            for event in batch:
                if event.type == RUN_START or event.type == RUN_END:
                    self._marker(event)
                    if self.end is not None:
                        break
                    if self.start is not None and self._gap is not None:
                        out.append(self._counted(self._gap))
                        self._gap = None
                elif self.start is not None:  # an earlier run's events on the thread are not ours
                    out.append(self._counted(event) if event.type == GAP else event)
                elif event.type == GAP:
                    self._gap = event
            yield out

    def _counted(self, gap: Event) -> Event:
        reason = gap.data.get("reason") if isinstance(gap.data, dict) else ""
        self.runs.metrics.gap(str(reason))
        return gap

    def _marker(self, event: Event) -> None:
        data = event.data
        if not isinstance(data, Mapping) or data.get("run_id") != self.run_id:
            return
        if event.type == RUN_START:
            self.start = data
        else:
            if self.start is None:
                self.missed_start, self.start = True, {}
            self.end = RunEnd(str(data.get("status")), str(data.get("error") or ""),
                              str(data.get("error_type") or ""))

    async def final_state(self) -> tuple[Mapping[str, Any], list[Any]]:
        """The thread's values after the run, and the pause it ended in as an `interrupt`
        event's data (the questions asked, or the nodes paused before; empty: no pause)."""
        latest = await self.runs.threads.store.latest(self.thread_id)
        if latest is None:
            return {}, []
        if latest.status != "paused":
            return latest.state, []
        return latest.state, [dict(i) for i in latest.interrupts] or list(latest.next)

    async def aclose(self) -> None:
        """Stop reading; if the run has not ended and asked for it, cancel it."""
        await self.subscription.aclose()
        if self.end is None and self._cancel_on_disconnect:
            record = self.record
            self.runs.request_cancel(record.info() if isinstance(record, RunRecord) else record)


def sse_response(run: RunSource, frames: AsyncIterator[bytes],
                 headers: Mapping[str, str] | None = None) -> StreamingResponse:
    """The run's SSE response of `frames`, with its `headers` and the run's; counted in the
    server's metrics (a stream open while it runs; each event it sends).

    Streamed as the native run stream is, in the request's own task with a second task
    watching for the client leaving: Starlette's own streams from a task group, more set-up
    in the loop turns where the run makes its model's request.
    """
    return StreamInRequestTask(_metered(frames, run.runs.metrics), media_type="text/event-stream",
                               headers={"Cache-Control": "no-store", **(headers or {}),
                                        **run.headers})


async def _metered(frames: AsyncIterator[bytes], metrics: ServerMetrics
                   ) -> AsyncIterator[bytes]:
    metrics.streams(+1)
    try:
        async for chunk in frames:
            # A chunk is whole frames, each ending with a blank line (JSON data holds no raw
            # newline); those starting with ":" are comments (keep-alives), not events.
            events = chunk.count(b"\n\n") - chunk.count(b"\n\n:") - chunk.startswith(b":")
            if events:
                metrics.delivered(events)
            yield chunk
    finally:
        metrics.streams(-1)
        # Left early (a client gone): the frames' own `finally` closes the run source now.
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()


async def start_run(runs: Runs, request: Request, graph_id: str,
                    input: Mapping[str, Any] | None, *, thread_id: str | None = None,
                    command: Mapping[str, Any] | None = None,
                    on_disconnect: Literal["cancel", "continue"] = "cancel",
                    keep_paused: bool = False, checkpoint_id: str | None = None) -> RunSource:
    """Start graph `graph_id` on `input` and return its events' source (close it when done).

    Without `thread_id` the run is stateless: its thread is deleted when it ends, and it writes
    only the checkpoint it ends with (durability "exit"). With one, the
    run continues that thread (created if new), as `/threads/{id}/runs/stream` would.
    `command` (`{"resume": ..., "update": ..., "goto": ...}`, with `input` None) continues a
    paused thread instead, as the API's `command` does. `keep_paused`: a stateless run's
    thread is kept while it is paused (and goes when a run answering it ends unpaused).
    `checkpoint_id`: the thread's checkpoint whose state `input` is added to (its latest by
    default), as the API's time travel does.

    Raises:
        RequestRefused: 404 unknown graph; 403 / 404 a thread `authorize` refuses; 409 a busy
            thread.
    """
    threads = runs.threads
    body = {"assistant_id": graph_id, "input": None if input is None else dict(input),
            "command": command, "on_disconnect": on_disconnect, "stream_mode": _MODES}
    if checkpoint_id is not None:
        body["checkpoint_id"] = checkpoint_id
    if thread_id is None:  # its thread will be temporary (below), known now
        body["durability"] = "exit"
    run_request = parse_run_request(body, default_disconnect=on_disconnect)
    served = runs.assistants.find(graph_id)  # an unknown graph fails before a thread is made
    if thread_id is None:
        # Made with the graph's ids, which `runs.start` would otherwise save; saved only if
        # the run outlives its end (paused and kept), as its id is told to no one before.
        thread = await threads.new(request, metadata={"graph_id": served.graph_id,
                                                      "assistant_id": served.assistant_id},
                                   temporary=True)
    elif await threads.find(thread_id) is None:
        thread = await threads.create(request, thread_id)
    else:
        thread = await threads.get(request, thread_id, "run")
    if thread.temporary and run_request.durability != "exit":
        # A temporary thread's checkpoints serve only to resume it once paused: its run
        # writes the checkpoint it ends with (paused, failed, completed), none before its
        # first node, which is then not kept waiting on the store.
        run_request = replace(run_request, durability="exit")
    subscription = open_subscription(runs.broker, thread.thread_id)
    try:
        record = await runs.start(thread, run_request, keep_paused=keep_paused,
                                  traceparent=request.headers.get("traceparent", ""),
                                  unseen=thread_id is None)
    except BaseException:
        await subscription.aclose()
        if thread.temporary:
            await threads.remove(thread.thread_id)
        raise
    # Let the run's task go first, up to its first wait (its model's answer, typically), and
    # the dialect build its response meanwhile, rather than delay the model's request by it.
    await asyncio.sleep(0)
    return RunSource(runs, record, subscription,
                     cancel_on_disconnect=on_disconnect == "cancel")


async def join_run(runs: Runs, request: Request, thread_id: str) -> RunSource | None:
    """The thread's run in progress, read from its start, or None when no run is.

    The broker replays the thread's retained events from just before the run was created, of
    which the source keeps those after the run's start marker; closing the source leaves the
    run running. (A replay from the topic's beginning would always begin with an "expired"
    `GAP`: a broker cannot tell what came before it started.)

    Raises:
        RequestRefused: 404 an unknown thread (or one `authorize` hides).
    """
    await runs.threads.get(request, thread_id)
    active = [r for r in await runs.of_thread(thread_id) if not r.finished]
    if not active:
        return None
    run = active[-1]
    # A run that ends from now on still ends this source: its end is in the replay.
    since = max(int(run.created_at * 1000) - _CLOCK_MARGIN_MS, 0)
    subscription = open_subscription(runs.broker, thread_id, f"{since}-0")
    return RunSource(runs, run, subscription, cancel_on_disconnect=False)

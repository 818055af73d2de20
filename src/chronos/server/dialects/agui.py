"""The AG-UI dialect: `POST /ag-ui/{graph_id}` runs a graph for AG-UI clients.

```ts
import { HttpAgent } from "@ag-ui/client";
const agent = new HttpAgent({ url: "http://127.0.0.1:8123/ag-ui/agent", threadId: "t-1" });
agent.addMessage({ id: "u1", role: "user", content: "hi" });
await agent.runAgent();          // agent.messages and agent.state rebuilt from the stream
```

The body is AG-UI's `RunAgentInput`; `threadId` is the chronos thread (created when new), so
the conversation lives in the thread's checkpoints. The run's input is the messages the thread
does not hold yet (as OpenAI-style dicts, under `messages`), the keys of `state` whose value
differs from the thread's, and `tools` / `context` when given (under those keys).

The answer is SSE (`data: <event JSON>`), translated from the run's broker events:
RUN_STARTED, STATE_SNAPSHOT (the values the run starts from), then per node STEP_STARTED,
TEXT_MESSAGE_* / REASONING_* / TOOL_CALL_* from its model tokens, CUSTOM for `emit()` events,
TOOL_CALL_RESULT for the tool messages it adds, STATE_DELTA (a JSON Patch) and STEP_FINISHED;
the run ends with RUN_FINISHED or RUN_ERROR. A run paused by `graph.interrupt(value)` (or
before an interrupt node) ends with RUN_FINISHED whose outcome is `{"type": "interrupt",
"interrupts": [...]}` (AG-UI 1.0; `@ag-ui/client` keeps them as `agent.pendingInterrupts`),
each carrying the question under `metadata.value`. The next run answers them with `resume`
entries (`agent.runAgent({ resume: [{ interruptId, status: "resolved", payload }] })`), or,
as LangGraph's AG-UI integration does, with `forwardedProps.command.resume`; what such a
request adds (new messages, changed state) goes into the command's `update`. A client that
leaves cancels the run, unless `forwardedProps.on_disconnect` is "continue".

`POST /ag-ui/{graph_id}/connect` (the same `RunAgentInput`; only `threadId` is read) is the
server side of `AbstractAgent.connectAgent()`: it streams the thread's run in progress from
its start (the broker's replay), whichever process or dialect started it, as the events of
that run; leaving it leaves the run alone; an empty stream when no run is in progress. When
the broker's replay window no longer holds all of the run, from the first event missing on
it shows only pauses, waits for the run's end and sends the final state (STATE_SNAPSHOT) and
answer (one TEXT_MESSAGE_*) whole.
`@ag-ui/client` 1.0.0's `HttpAgent` does not implement `connect()` (the base class throws
`AGUIConnectNotImplementedError`, which `connectAgent()` swallows, so it resolves with
nothing): an `HttpAgent` subclass whose `connect(input)` posts to this route does reconnect
(README, "AG-UI").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chronos.errors import RequestRefused
from chronos.server._body import read_json_object
from chronos.server._runs import Runs
from chronos.server._stream_modes import api_interrupts
from chronos.server.dialects._history import adding_messages, new_messages, thread_values
from chronos.server.dialects._parts import Part, tool_results
from chronos.server.dialects._patch import diff
from chronos.server.dialects._run import RunEnd, RunSource, join_run, sse_response, start_run
from chronos.server.dialects._translate import HEARTBEAT, Translator, data_frames

__all__ = ["AguiTranslator", "agui_routes", "run_input"]

_ROLES: Final = ("user", "assistant", "system", "developer", "tool", "reasoning", "activity")
_STATIC: Final = "before-"  # the interrupt id of a pause at a node, which asked nothing


def agui_routes(runs: Runs) -> list[Route]:
    async def run_agent(request: Request) -> Response:
        graph_id = request.path_params["graph_id"]
        runs.assistants.find(graph_id)  # 404 before the body is looked at
        body = await read_json_object(request)
        thread_id, run_id, input_, command = run_input(body)
        on_disconnect = _on_disconnect(body)
        values = await thread_values(runs, thread_id)
        messages = new_messages(runs, graph_id, values, input_.pop("messages"))
        changes = {k: v for k, v in input_.items() if values.get(k) != v}
        if messages or command is None:
            changes["messages"] = messages
        if command is not None:  # what the request adds beside the answer is kept too
            command = adding_messages(command, "forwardedProps.command", changes)
        run = await start_run(runs, request, graph_id, None if command else changes,
                              thread_id=thread_id, command=command, on_disconnect=on_disconnect)
        return _response(run, AguiTranslator(thread_id, run_id))

    async def connect(request: Request) -> Response:
        runs.assistants.find(request.path_params["graph_id"])
        thread_id = _string(await read_json_object(request), "threadId")
        run = await join_run(runs, request, thread_id)
        if run is None:  # an empty stream: `connectAgent()` resolves, having nothing to add
            return Response(b"", media_type="text/event-stream",
                            headers={"Cache-Control": "no-store"})
        return _response(run, AguiTranslator(thread_id, run.run_id))

    return [Route("/ag-ui/{graph_id}", run_agent, methods=["POST"]),
            Route("/ag-ui/{graph_id}/connect", connect, methods=["POST"])]


def _response(run: RunSource, translator: AguiTranslator) -> StreamingResponse:
    return sse_response(run, _frames(run, translator))


def _on_disconnect(body: Mapping[str, Any]) -> Literal["cancel", "continue"]:
    props = body.get("forwardedProps")
    value = props.get("on_disconnect", "cancel") if isinstance(props, dict) else "cancel"
    if value == "continue":
        return "continue"
    if value != "cancel":
        raise RequestRefused(422, "field 'forwardedProps.on_disconnect' must be 'cancel' or "
                                  "'continue'")
    return "cancel"


async def _frames(run: RunSource, translator: AguiTranslator) -> AsyncIterator[bytes]:
    try:
        yield data_frames(translator.started())
        async for batch in run.batches():
            if not batch and run.start is None:
                yield HEARTBEAT
                continue
            out = [] if run.start is None or run.missed_start else translator.snapshot(run.start)
            for event in batch:
                out.extend(translator.translate(event))
            yield data_frames(out) if out else HEARTBEAT
        lost = run.missed_start or translator.lost
        if lost and run.end is not None and run.end.status == "success":
            values, pause = await run.final_state()  # what it did: its events are gone
            last = translator.resync(values)
            last += translator.recovered(values, pause, f"{run.run_id}-answer",
                                         missed_start=run.missed_start)
        else:
            last = translator.snapshot(run.start or {})
        yield data_frames(last + translator.finished(run.end))
    finally:
        await run.aclose()


def run_input(body: Mapping[str, Any]
              ) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
    """`RunAgentInput` read into (thread id, run id, the run's input, its command or None).

    Raises:
        RequestRefused: 422 naming the first field that is wrong.
    """
    thread_id, run_id = _string(body, "threadId"), _string(body, "runId")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestRefused(422, "field 'messages' must be an array of messages")
    converted = [_message(m, i) for i, m in enumerate(messages)]
    state = body.get("state")
    if state is not None and not isinstance(state, dict):
        raise RequestRefused(422, "field 'state' must be an object")
    input_: dict[str, Any] = {k: v for k, v in (state or {}).items() if k != "messages"}
    input_["messages"] = [m for m in converted if m["role"] not in ("reasoning", "activity")]
    for name in ("tools", "context"):
        value = body.get(name)
        if value is not None and not isinstance(value, list):
            raise RequestRefused(422, f"field {name!r} must be an array")
        if value:
            input_[name] = value
    return thread_id, run_id, input_, _command(body)


def _string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise RequestRefused(422, f"field {name!r} is required (a non-empty string)")
    return value


def _message(message: Any, index: int) -> dict[str, Any]:
    """An AG-UI message as the graph's state holds messages: an OpenAI-style dict."""
    where = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        raise RequestRefused(422, f"field '{where}' must be a message with a string 'id'")
    role = message.get("role")
    if role not in _ROLES:
        raise RequestRefused(422, f"field '{where}.role' must be one of {list(_ROLES)}")
    content = message.get("content")
    if isinstance(content, list):  # parts: the text ones are what a chat graph reads
        content = "".join(p.get("text", "") for p in content
                          if isinstance(p, dict) and p.get("type") == "text")
    out: dict[str, Any] = {"id": message["id"], "role": role, "content": content or ""}
    calls = message.get("toolCalls")
    if calls:
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise RequestRefused(422, f"field '{where}.toolCalls' must be an array of tool calls")
        out["tool_calls"] = [{"id": c.get("id"), "type": "function",
                              "function": dict(c.get("function") or {})} for c in calls]
    if role == "tool":
        if not isinstance(message.get("toolCallId"), str):
            raise RequestRefused(422, f"field '{where}.toolCallId' is required for a tool message")
        out["tool_call_id"] = message["toolCallId"]
    return out


def _command(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The answer to the interrupts a previous run ended with, if this run gives one."""
    resume = body.get("resume")
    props = body.get("forwardedProps")
    forwarded = props.get("command") if isinstance(props, dict) else None
    if forwarded is not None:
        if not isinstance(forwarded, dict):
            raise RequestRefused(422, "field 'forwardedProps.command' must be an object")
        return dict(forwarded)
    if not resume:
        return None
    if not isinstance(resume, list) or not all(
            isinstance(r, dict) and isinstance(r.get("interruptId"), str) for r in resume):
        raise RequestRefused(422, "field 'resume' must be an array of {interruptId, status, "
                             "payload} entries")
    answers = {r["interruptId"]: r.get("payload") for r in resume
               if r.get("status", "resolved") == "resolved"}
    if any(i.startswith(_STATIC) for i in answers):
        # A pause at a node asked nothing: its answer (an object) updates the state.
        return {"resume": next(iter(answers.values()))}
    if not answers:
        raise RequestRefused(422, "field 'resume' cancels every interrupt; a paused thread "
                             "continues only with an answer (status 'resolved')")
    return {"resume": answers}


def _events(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, part_id, a, b in parts:
        if kind == "text-delta":
            out.append({"type": "TEXT_MESSAGE_CONTENT", "messageId": part_id, "delta": a})
        elif kind == "text-start":
            out.append({"type": "TEXT_MESSAGE_START", "messageId": part_id, "role": "assistant"})
        elif kind == "text-end":
            out.append({"type": "TEXT_MESSAGE_END", "messageId": part_id})
        elif kind == "reasoning-delta":
            out.append({"type": "REASONING_MESSAGE_CONTENT", "messageId": part_id, "delta": a})
        elif kind == "tool-delta":
            out.append({"type": "TOOL_CALL_ARGS", "toolCallId": part_id, "delta": a})
        elif kind == "tool-start":
            out.append({"type": "TOOL_CALL_START", "toolCallId": part_id, "toolCallName": a,
                        "parentMessageId": b})
        elif kind == "tool-end":
            out.append({"type": "TOOL_CALL_END", "toolCallId": part_id})
        elif kind == "reasoning-start":  # a span, and the one message in it
            out.append({"type": "REASONING_START", "messageId": part_id})
            out.append({"type": "REASONING_MESSAGE_START", "messageId": part_id,
                        "role": "reasoning"})
        else:
            out.append({"type": "REASONING_MESSAGE_END", "messageId": part_id})
            out.append({"type": "REASONING_END", "messageId": part_id})
    return out


class AguiTranslator(Translator):
    """One run's broker events as AG-UI events (JSON-ready dicts); pure, no I/O.

    ```python
    t = AguiTranslator("thread-1", "run-1")
    events = t.started() + t.snapshot(start_values)
    for event in broker_events:
        events += t.translate(event)
    events += t.finished(run_end)
    ```
    """

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.run_id = run_id
        self._state: Any = None
        self._interrupts: list[dict[str, Any]] = []

    def started(self) -> list[dict[str, Any]]:
        return [{"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id,
                 "timestamp": _now()}]

    def snapshot(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The STATE_SNAPSHOT the run starts from (once; later calls give nothing)."""
        if self._state is not None:
            return []
        self._state = dict(values.get("values") or {})
        return [{"type": "STATE_SNAPSHOT", "snapshot": self._state}]

    def resync(self, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A STATE_SNAPSHOT of `values`, whatever was shown before (events were lost)."""
        self._state = dict(values)
        return [{"type": "STATE_SNAPSHOT", "snapshot": self._state}]

    def finished(self, end: RunEnd | None) -> list[dict[str, Any]]:
        """The run's last events, from how it ended (None: its stream closed first)."""
        if end is None or end.status == "error":
            message = end.error if end is not None else "the run's stream closed before its end"
            return [{"type": "RUN_ERROR", "message": message or "the run failed",
                     "code": (end.error_type if end is not None else "") or "Error",
                     "timestamp": _now()}]
        done: dict[str, Any] = {"type": "RUN_FINISHED", "threadId": self.thread_id,
                                "runId": self.run_id, "timestamp": _now()}
        if end.status == "interrupted":
            done["outcome"] = {"type": "cancelled"}
        elif self._interrupts:
            done["outcome"] = {"type": "interrupt", "interrupts": self._interrupts}
        return [*self._close(), done]

    _encode = staticmethod(_events)

    def _step_started(self, node_id: str) -> list[dict[str, Any]]:
        return [{"type": "STEP_STARTED", "stepName": node_id}]

    def _step_finished(self, node_id: str) -> list[dict[str, Any]]:
        return [{"type": "STEP_FINISHED", "stepName": node_id}]

    def _node_ended(self, node_id: str, payload: Mapping[str, Any], started: bool
                    ) -> list[dict[str, Any]]:
        out = [{"type": "TOOL_CALL_RESULT", "messageId": message_id, "toolCallId": call_id,
                "content": content, "role": "tool"}
               for message_id, call_id, content in tool_results(payload.get("data"))]
        state = payload.get("state")
        if isinstance(state, Mapping):
            ops = diff(self._state or {}, state)
            self._state = dict(state)
            if ops:
                out.append({"type": "STATE_DELTA", "delta": ops})
        return out + self._step_finished(node_id) if started else out

    def _custom(self, name: str, data: Any) -> list[dict[str, Any]]:
        return [{"type": "CUSTOM", "name": name, "value": data}]

    def _paused(self, data: Any) -> list[dict[str, Any]]:
        self._interrupts.extend(_interrupts(data))
        return []


def _now() -> int:
    return int(time.time() * 1000)


def _interrupts(data: Any) -> list[dict[str, Any]]:
    """A pause as AG-UI interrupts: each `interrupt(value)` question, or the nodes paused at."""
    asked = [{"id": str(q["id"]), "reason": "input_required",
              **({"message": q["value"]} if isinstance(q["value"], str) else {}),
              "metadata": {"value": q["value"]}} for q in api_interrupts(data)]
    if asked:
        return asked
    nodes = [n for n in data or () if isinstance(n, str)]
    return [{"id": _STATIC + n, "reason": "breakpoint", "message": f"paused at {n}"}
            for n in nodes]

"""The Vercel AI SDK dialect: `POST /ai-sdk/{graph_id}` answers `useChat` with the UI message
stream, and `GET /ai-sdk/{graph_id}/{chat_id}/stream` lets it reconnect to a run in progress.

```tsx
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
const { messages, sendMessage } = useChat({
  id: "chat-1", resume: true,   // resume: reconnect to a run still going after a reload
  transport: new DefaultChatTransport({ api: "http://127.0.0.1:8123/ai-sdk/agent" }),
});
```

The chat `id` is the chronos thread (created when new). The run's input is what the
conversation adds to it: for a new thread every message, for a known one the messages after
its last assistant message (the thread holds the graph's own answers), in both cases without
the ids the thread already has, as OpenAI-style dicts under `messages` (text parts as
`content`; tool parts as the assistant's `tool_calls` and, with their output, tool messages).
A client that leaves does not stop the run (`useChat` reconnects to it; its stop button ends
the request only).

`trigger: "regenerate-message"` (`useChat`'s `regenerate()`) runs the answer again from the
thread's state before it, time travel as the API's `checkpoint_id` does: the answer's run
(`messageId` is its id, which the `start` chunk gave; without one, the chat's latest run) is
started again from the checkpoint it started from (a first answer: the thread's first
checkpoint, its input), with the request's messages after its last assistant message that
this state does not hold. The thread's history keeps the old answer as a branch; its latest
state is the new one. An answer whose run the server no longer remembers (older than the
runs it keeps per thread) cannot be regenerated (422 naming `messageId`).

The answer (header `x-vercel-ai-ui-message-stream: v1`) is SSE, one UI message chunk per
`data:` line, translated from the run's broker events: `start` (the message id is the run id),
then per node `start-step`, `text-*` / `reasoning-*` / `tool-input-*` from its model tokens,
`data-<name>` for `emit(name, data)` events, `tool-output-available` for the tool messages it
adds and `finish-step`; a pause (`graph.interrupt(value)`) is a `data-interrupt` chunk with the
questions, which the next request answers with a `command` beside its messages
(`sendMessage(message, { body: { command: { resume: answer } } })`; the messages are added
by the command's update); the run ends with `finish` (after an `error` chunk when it failed), then
`data: [DONE]`. The reconnect route streams the chat's run in progress from its start (the
broker's replay), which `DefaultChatTransport` expects (`resumeStreamIsReplay`), or answers
204 when none is running. When the broker's replay window (`replay_events` /
`replay_seconds` of the broker URL) no longer holds all of the run, a replay would show the
message with holes: from the first event missing on, the stream shows nothing but a pause,
waits for the run's end (keep-alive comments meanwhile) and sends its final answer's text
whole (and the pause it ended in, if none of its events was left), then `finish` (the same
when a reader too slow loses events).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chronos.errors import RequestRefused
from chronos.server._body import read_json_object
from chronos.server._runs import Runs
from chronos.server._stream_modes import api_interrupts
from chronos.server.dialects._history import adding_messages, new_messages, thread_values
from chronos.server.dialects._parts import Part, tool_results
from chronos.server.dialects._run import RunEnd, RunSource, join_run, sse_response, start_run
from chronos.server.dialects._translate import HEARTBEAT, Translator, data_frames
from chronos.store import Checkpoint

__all__ = ["UIMessageTranslator", "aisdk_routes", "chat_messages"]

_HEADERS: Final = {"x-vercel-ai-ui-message-stream": "v1", "Cache-Control": "no-store",
                   "x-accel-buffering": "no"}
_DONE: Final = b"data: [DONE]\n\n"
_TRIGGERS: Final = ("submit-message", "regenerate-message")


def aisdk_routes(runs: Runs) -> list[Route]:
    async def chat(request: Request) -> Response:
        graph_id = request.path_params["graph_id"]
        runs.assistants.find(graph_id)  # 404 before the body is looked at
        body = await read_json_object(request)
        chat_id = body.get("id")
        if not isinstance(chat_id, str) or not chat_id:
            raise RequestRefused(422, "field 'id' is required (the chat id, a non-empty string)")
        trigger = body.get("trigger", "submit-message")
        if trigger not in _TRIGGERS:
            raise RequestRefused(422, f"field 'trigger' must be one of {list(_TRIGGERS)}")
        messages = chat_messages(body.get("messages"))
        checkpoint: Checkpoint | None = None
        if trigger == "regenerate-message":
            checkpoint = await _before_answer(runs, request, chat_id, body)
            values: Mapping[str, Any] = checkpoint.state if checkpoint is not None else {}
        else:
            values = await thread_values(runs, chat_id)
        if values:
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"),
                       default=-1)
            messages = messages[last + 1:]
        messages = new_messages(runs, graph_id, values, messages)
        command = _command(body, messages)
        # A chat that reloads reconnects to its run (`resume: true`), so leaving must not end it.
        run = await start_run(runs, request, graph_id,
                              None if command else {"messages": messages}, thread_id=chat_id,
                              command=command, on_disconnect="continue",
                              checkpoint_id=checkpoint.id if checkpoint is not None else None)
        return _response(run)

    async def reconnect(request: Request) -> Response:
        runs.assistants.find(request.path_params["graph_id"])
        run = await join_run(runs, request, request.path_params["chat_id"])
        if run is None:
            return Response(status_code=204)
        return _response(run)

    return [Route("/ai-sdk/{graph_id}", chat, methods=["POST"]),
            Route("/ai-sdk/{graph_id}/{chat_id}/stream", reconnect, methods=["GET"])]


def _response(run: RunSource) -> StreamingResponse:
    return sse_response(run, _frames(run, UIMessageTranslator(run.run_id)), _HEADERS)


async def _frames(run: RunSource, translator: UIMessageTranslator) -> AsyncIterator[bytes]:
    try:
        async for batch in run.batches():
            out = translator.started() if run.start is not None else []
            for event in batch:
                out.extend(translator.translate(event))
            yield data_frames(out) if out else HEARTBEAT
        last = translator.started()
        lost = run.missed_start or translator.lost
        if lost and run.end is not None and run.end.status == "success":
            values, pause = await run.final_state()
            last += translator.recovered(values, pause, run.run_id,
                                         missed_start=run.missed_start)
        yield data_frames(last + translator.finished(run.end)) + _DONE
    finally:
        await run.aclose()


async def _before_answer(runs: Runs, request: Request, chat_id: str,
                         body: Mapping[str, Any]) -> Checkpoint | None:
    """The checkpoint the answer to regenerate started from (None: the chat has none).

    Raises:
        RequestRefused: 404 an unknown chat; 422 `messageId` names no answer of it, or a
            `command` comes with it.
    """
    if body.get("command") is not None:
        raise RequestRefused(422, "field 'command' cannot answer a pause while regenerating")
    message_id = body.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise RequestRefused(422, "field 'messageId' must be a string")
    await runs.threads.get(request, chat_id, "run")
    answers = await runs.of_thread(chat_id)  # newest first
    if message_id is not None:
        answers = [r for r in answers if r.run_id == message_id]
    if not answers:
        raise RequestRefused(422, f"field 'messageId': {message_id!r} names no answer of chat "
                                  f"{chat_id!r} that the server remembers")
    store = runs.threads.store
    base = answers[0].base_checkpoint_id
    if base is not None:
        return await store.get(base)
    first = await store.history(chat_id, limit=None)
    return first[0] if first else None


def _command(body: Mapping[str, Any], messages: list[dict[str, Any]]
             ) -> dict[str, Any] | None:
    """`body.command` (`sendMessage(message, { body: { command: { resume } } })`), the new
    messages added by its `update`: the answer to a paused run, and what the user wrote."""
    command = body.get("command")
    if command is None:
        return None
    if not isinstance(command, dict):
        raise RequestRefused(422, "field 'command' must be an object ({resume, update, goto})")
    return adding_messages(command, "command", {"messages": messages} if messages else {})


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """`UIMessage`s as the graph's state holds messages (OpenAI-style dicts).

    Raises:
        RequestRefused: 422 naming the first message or part that is wrong.
    """
    if not isinstance(messages, list):
        raise RequestRefused(422, "field 'messages' must be an array of UI messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            raise RequestRefused(422, f"field '{where}' must be a UI message with a string 'id'")
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            raise RequestRefused(422, f"field '{where}.role' must be 'user', 'assistant' or "
                                 "'system'")
        parts = message.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise RequestRefused(422, f"field '{where}.parts' must be an array of parts")
        text = "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")
        converted: dict[str, Any] = {"id": message["id"], "role": role, "content": text}
        tools = [p for p in parts if str(p.get("type", "")).startswith("tool-")
                 or p.get("type") == "dynamic-tool"]
        if tools:
            converted["tool_calls"] = [
                {"id": p.get("toolCallId"), "type": "function",
                 "function": {"name": p.get("toolName") or str(p["type"])[5:],
                              "arguments": orjson.dumps(p.get("input") or {}).decode()}}
                for p in tools]
        out.append(converted)
        for p in tools:
            if p.get("state") == "output-available":
                output = p.get("output")
                out.append({"id": f"result-{p.get('toolCallId')}", "role": "tool",
                            "tool_call_id": p.get("toolCallId"),
                            "content": output if isinstance(output, str)
                            else orjson.dumps(output).decode()})
    return out


def _chunks(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, part_id, a, b in parts:
        if kind == "text-delta" or kind == "reasoning-delta":
            out.append({"type": kind, "id": part_id, "delta": a})
        elif kind == "tool-delta":
            out.append({"type": "tool-input-delta", "toolCallId": part_id, "inputTextDelta": a})
        elif kind == "tool-start":
            out.append({"type": "tool-input-start", "toolCallId": part_id, "toolName": a})
        elif kind == "tool-end":
            out.append({"type": "tool-input-available", "toolCallId": part_id, "toolName": a,
                        "input": _arguments(b)})
        else:  # text-start, text-end, reasoning-start, reasoning-end
            out.append({"type": kind, "id": part_id})
    return out


class UIMessageTranslator(Translator):
    """One run's broker events as AI SDK UI message chunks (JSON-ready dicts); pure, no I/O.

    ```python
    t = UIMessageTranslator("run-1")
    chunks = t.started()
    for event in broker_events:
        chunks += t.translate(event)
    chunks += t.finished(run_end)
    ```
    """

    def __init__(self, message_id: str) -> None:
        super().__init__()
        self.message_id = message_id
        self._sent_start = False

    def started(self) -> list[dict[str, Any]]:
        """The `start` chunk (once; later calls give nothing)."""
        if self._sent_start:
            return []
        self._sent_start = True
        return [{"type": "start", "messageId": self.message_id}]

    def finished(self, end: RunEnd | None) -> list[dict[str, Any]]:
        """The run's last chunks, from how it ended (None: its stream closed first)."""
        out = self._close()
        if end is None or end.status == "error":
            text = end.error if end is not None else "the run's stream closed before its end"
            out.append({"type": "error", "errorText": text or "the run failed"})
            out.append({"type": "finish", "finishReason": "error"})
        else:
            reason = "interrupted" if end.status == "interrupted" else "stop"
            out.append({"type": "finish", "finishReason": reason})
        return out

    _encode = staticmethod(_chunks)

    def _step_started(self, node_id: str) -> list[dict[str, Any]]:
        return [{"type": "start-step"}]

    def _step_finished(self, node_id: str) -> list[dict[str, Any]]:
        return [{"type": "finish-step"}]

    def _node_ended(self, node_id: str, payload: Mapping[str, Any], started: bool
                    ) -> list[dict[str, Any]]:
        out = [{"type": "tool-output-available", "toolCallId": call_id, "output": content}
               for _, call_id, content in tool_results(payload.get("data"))]
        return out + self._step_finished(node_id) if started else out

    def _custom(self, name: str, data: Any) -> list[dict[str, Any]]:
        return [{"type": f"data-{name}", "data": data}]

    def _paused(self, data: Any) -> list[dict[str, Any]]:
        nodes = [n for n in data or () if isinstance(n, str)]
        return [{"type": "data-interrupt",
                 "data": {"interrupts": api_interrupts(data), "nodes": nodes}}]


def _arguments(text: str) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return text

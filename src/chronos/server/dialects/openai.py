"""The OpenAI-compatible routes: `/v1/chat/completions`, `/v1/responses`, `/v1/models`.

```python
client = openai.OpenAI(base_url="http://127.0.0.1:8123/v1", api_key="unused")
for chunk in client.chat.completions.create(
        model="agent", messages=[{"role": "user", "content": "hi"}], stream=True):
    print(chunk.choices[0].delta.content or "", end="")
```

`model` names the graph; the request's `messages` (or Responses `input`, with `instructions`
first as a system message) become the input state's `messages`, as OpenAI-style dicts. Each
request is a stateless run: a client that leaves cancels it, as leaving an OpenAI request
stops its generation. Options a graph cannot honour (sampling settings, tools, `n` > 1...)
are refused with a 400 naming them rather than ignored. Errors have OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`; once a stream has begun, an error is an
event of the stream.

Tokens of a subgraph's nodes are content like any other node's. A run that pauses
(`graph.interrupt(value)`) ends with a call of the function `interrupt` per question (finish
reason "tool_calls"; in a Responses answer a `function_call` item), its arguments the
question: the call id (`call_interrupt_<thread>_<question id>`) names the paused thread,
which is kept until answered. The next request whose last messages are the tool results for
those calls (Responses: `function_call_output` items) resumes that thread with them as the
answers (the content as JSON when it parses, else text); the rest of its conversation is
already the thread's. Custom events (`emit(name, data)`) have no place in OpenAI's chunks
and are not shown (the AG-UI and AI SDK routes and the native stream show them).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chronos.errors import ClientGone, RequestRefused
from chronos.server._body import read_json_object
from chronos.server._runs import Runs
from chronos.server.dialects._openai_chat import ChatCompletion
from chronos.server.dialects._openai_output import (
    ToolCallPiece,
    interrupt_calls,
    interrupt_questions,
)
from chronos.server.dialects._openai_request import (
    OpenAIRefusal,
    OpenAIRequest,
    parse_chat,
    parse_responses,
)
from chronos.server.dialects._openai_responses import Response as ResponseBuilder
from chronos.server.dialects._run import RunSource, sse_response, start_run
from chronos.stream import GAP, Event

__all__ = ["openai_routes"]

_KEEP_ALIVE: Final = b": keep-alive\n\n"
_DISCONNECT_CHECK_SECONDS: Final = 1.0  # how often a non-streaming request looks for its client
_ERROR_TYPES: Final = {400: "invalid_request_error", 403: "permission_error",
                       404: "invalid_request_error", 409: "conflict_error",
                       413: "invalid_request_error"}


def _error(status: int, message: str, param: str | None = None,
           code: str | None = None) -> Response:
    body = {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"),
                      "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def _guarded(route: Callable[[Request], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
    """Answer refusals in OpenAI's error shape rather than the Agent Server's."""

    async def guarded(request: Request) -> Response:
        try:
            return await route(request)
        except OpenAIRefusal as exc:
            return _error(exc.status, exc.message, exc.param, exc.code)
        except ClientGone:  # a RequestRefused too, with no one to answer: the app is quiet
            raise
        except RequestRefused as exc:
            # The body readers say 422 for JSON that does not parse; OpenAI says 400.
            status = 400 if exc.status_code == 422 else exc.status_code
            return _error(status, exc.detail)

    return guarded


def _failure(run: RunSource) -> tuple[str, str] | None:
    """(message, code) if the run did not succeed."""
    end = run.end
    if end is None:
        return "the run's stream ended before the run did", "stream_ended"
    if end.status == "error":
        return end.error or "the run failed", end.error_type or "run_failed"
    if end.status != "success":
        return f"the run ended as {end.status}", end.status
    return None


def _gap(batch: list[Event]) -> bool:
    return any(e.type == GAP for e in batch)


class _Reader:
    """What the OpenAI routes take from a run's events: token deltas, of the graph and its
    subgraphs alike, and the questions of a pause."""

    def __init__(self, run: RunSource) -> None:
        self.run = run
        self.questions: dict[str, Any] = {}  # question id -> its tool call's arguments

    def tokens(self, batch: list[Event]) -> list[Mapping[str, Any]]:
        out = []
        for event in batch:
            payload = event.data
            if not isinstance(payload, Mapping):
                continue
            if event.type == "token":
                data = payload.get("data")
                if isinstance(data, Mapping):
                    out.append(data)
            elif event.type == "interrupt":  # a subgraph's pause may be told twice: by id
                self.questions.update(interrupt_questions(payload.get("data")))
        return out

    def pause_calls(self) -> tuple[ToolCallPiece, ...]:
        """The pause's `interrupt` calls, if the run paused."""
        return interrupt_calls(self.run.thread_id, self.questions)


async def _start(runs: Runs, request: Request, asked: OpenAIRequest) -> _Reader:
    """A new stateless run of the request's messages, or the paused thread it answers
    resumed (either kept while paused)."""
    resume = asked.resume
    if resume is None:
        run = await start_run(runs, request, asked.graph_id, {"messages": asked.messages},
                              keep_paused=True)
        return _Reader(run)
    thread = await runs.threads.find(resume.thread_id)
    if thread is None or thread.metadata.get("graph_id") != asked.graph_id:
        raise OpenAIRefusal(404, f"No paused run of model '{asked.graph_id}' waits for these "
                                 f"tool results (answered already, or never asked)",
                            resume.param, "interrupt_not_found")
    run = await start_run(runs, request, asked.graph_id, None, thread_id=resume.thread_id,
                          command=resume.command, keep_paused=True)
    return _Reader(run)


async def _until_end(reader: _Reader, request: Request,
                     each: Callable[[Mapping[str, Any]], object]) -> bool:
    """Feed the run's token deltas to `each` until it ends; False if the client left (the
    run is then cancelled) or events were lost."""
    check_at = time.monotonic() + _DISCONNECT_CHECK_SECONDS
    async for batch in reader.run.batches(heartbeat=_DISCONNECT_CHECK_SECONDS):
        if _gap(batch):
            return False
        for token in reader.tokens(batch):
            each(token)
        if time.monotonic() >= check_at:
            if await request.is_disconnected():
                return False
            check_at = time.monotonic() + _DISCONNECT_CHECK_SECONDS
    return True


def openai_routes(runs: Runs) -> list[Route]:
    """The routes, for the app `create_app` builds."""

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            _model(s.graph_id) for s in runs.assistants.served.values()]})

    async def model(request: Request) -> Response:
        graph_id = request.path_params["model"]
        if graph_id not in runs.assistants.served:
            raise OpenAIRefusal(404, f"The model '{graph_id}' does not exist", "model",
                                "model_not_found")
        return JSONResponse(_model(graph_id))

    async def chat(request: Request) -> Response:
        asked = parse_chat(await read_json_object(request), runs.assistants.served)
        reader = await _start(runs, request, asked)
        run = reader.run
        completion = ChatCompletion(f"chatcmpl-{run.run_id}", asked.graph_id,
                                    include_usage=asked.include_usage)
        if asked.stream:
            return sse_response(run, _chat_frames(reader, completion))
        try:
            whole = await _until_end(reader, request, _add_delta(completion))
        finally:
            await run.aclose()
        failure = _failure(run) if whole else ("the client left, or events were lost",
                                               "incomplete")
        if failure is not None:
            return _error(500, failure[0], code=failure[1])
        if not completion.streamed:
            answer = completion.answer_delta(run.values)
            if answer is not None:
                completion.add(answer)
        calls = completion.calls_delta(reader.pause_calls())
        if calls is not None:
            completion.add(calls)
        return JSONResponse(completion.whole(), headers=run.headers)

    async def responses(request: Request) -> Response:
        asked = parse_responses(await read_json_object(request), runs.assistants.served)
        reader = await _start(runs, request, asked)
        run = reader.run
        builder = ResponseBuilder(f"resp_{run.run_id.replace('-', '')}", asked.graph_id)
        if asked.stream:
            return sse_response(run, _response_frames(reader, builder))
        try:
            whole = await _until_end(reader, request, builder.token)
        finally:
            await run.aclose()
        failure = _failure(run) if whole else ("the client left, or events were lost",
                                               "incomplete")
        if failure is not None:
            return _error(500, failure[0], code=failure[1])
        if not builder.streamed:
            builder.answer(run.values)
        builder.calls(reader.pause_calls())
        builder.completed()
        return JSONResponse(builder.body(), headers=run.headers)

    return [Route("/v1/models", _guarded(models), methods=["GET"]),
            Route("/v1/models/{model:path}", _guarded(model), methods=["GET"]),
            Route("/v1/chat/completions", _guarded(chat), methods=["POST"]),
            Route("/v1/responses", _guarded(responses), methods=["POST"])]


def _model(graph_id: str) -> dict[str, Any]:
    return {"id": graph_id, "object": "model", "created": 0, "owned_by": "chronos"}


def _add_delta(completion: ChatCompletion) -> Callable[[Mapping[str, Any]], None]:
    def add(token: Mapping[str, Any]) -> None:
        delta = completion.delta(token)
        if delta is not None:
            completion.add(delta)
    return add


async def _chat_frames(reader: _Reader, completion: ChatCompletion) -> AsyncIterator[bytes]:
    run = reader.run
    try:
        yield completion.first_chunk()
        async for batch in run.batches():
            if not batch:
                yield _KEEP_ALIVE
                continue
            if _gap(batch):
                yield completion.error_chunk("the stream fell behind and lost events", "gap")
                return
            deltas = (completion.delta(token) for token in reader.tokens(batch))
            out = b"".join(completion.chunk(d) for d in deltas if d is not None)
            if out:
                yield out
        failure = _failure(run)
        if failure is not None:
            yield completion.error_chunk(*failure)
            return
        if not completion.streamed:
            answer = completion.answer_delta(run.values)
            if answer is not None:
                yield completion.chunk(answer)
        calls = completion.calls_delta(reader.pause_calls())
        if calls is not None:
            yield completion.chunk(calls)
        yield completion.last_chunks()
    finally:
        await run.aclose()


async def _response_frames(reader: _Reader, builder: ResponseBuilder
                          ) -> AsyncIterator[bytes]:
    run = reader.run
    try:
        yield builder.opening()
        async for batch in run.batches():
            if not batch:
                yield _KEEP_ALIVE
                continue
            if _gap(batch):
                yield builder.failed("the stream fell behind and lost events", "gap")
                return
            out = b"".join(builder.token(token) for token in reader.tokens(batch))
            if out:
                yield out
        failure = _failure(run)
        if failure is not None:
            yield builder.failed(*failure)
            return
        yield ((b"" if builder.streamed else builder.answer(run.values))
               + builder.calls(reader.pause_calls()) + builder.completed())
    finally:
        await run.aclose()

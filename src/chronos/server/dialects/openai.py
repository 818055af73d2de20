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
from chronos.server.dialects._openai_request import OpenAIRefusal, parse_chat, parse_responses
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


def _tokens(batch: list[Event]) -> list[Mapping[str, Any]]:
    """The token deltas of a batch (of the outermost graph: a subgraph's model calls are its
    own business, as in LangGraph's `messages` mode without subgraphs)."""
    out = []
    for event in batch:
        payload = event.data
        if event.type == "token" and isinstance(payload, Mapping) and not payload.get("path"):
            data = payload.get("data")
            if isinstance(data, Mapping):
                out.append(data)
    return out


async def _until_end(run: RunSource, request: Request,
                     each: Callable[[Mapping[str, Any]], object]) -> bool:
    """Feed the run's token deltas to `each` until it ends; False if the client left (the
    run is then cancelled) or events were lost."""
    check_at = time.monotonic() + _DISCONNECT_CHECK_SECONDS
    async for batch in run.batches(heartbeat=_DISCONNECT_CHECK_SECONDS):
        if _gap(batch):
            return False
        for token in _tokens(batch):
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
        run = await start_run(runs, request, asked.graph_id, {"messages": asked.messages})
        completion = ChatCompletion(f"chatcmpl-{run.run_id}", asked.graph_id,
                                    include_usage=asked.include_usage)
        if asked.stream:
            return sse_response(run, _chat_frames(run, completion))
        try:
            whole = await _until_end(run, request, _add_delta(completion))
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
        return JSONResponse(completion.whole(), headers=run.headers)

    async def responses(request: Request) -> Response:
        asked = parse_responses(await read_json_object(request), runs.assistants.served)
        run = await start_run(runs, request, asked.graph_id, {"messages": asked.messages})
        builder = ResponseBuilder(f"resp_{run.run_id.replace('-', '')}", asked.graph_id)
        if asked.stream:
            return sse_response(run, _response_frames(run, builder))
        try:
            whole = await _until_end(run, request, builder.token)
        finally:
            await run.aclose()
        failure = _failure(run) if whole else ("the client left, or events were lost",
                                               "incomplete")
        if failure is not None:
            return _error(500, failure[0], code=failure[1])
        if not builder.streamed:
            builder.answer(run.values)
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


async def _chat_frames(run: RunSource, completion: ChatCompletion) -> AsyncIterator[bytes]:
    try:
        yield completion.first_chunk()
        async for batch in run.batches():
            if not batch:
                yield _KEEP_ALIVE
                continue
            if _gap(batch):
                yield completion.error_chunk("the stream fell behind and lost events", "gap")
                return
            deltas = (completion.delta(token) for token in _tokens(batch))
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
        yield completion.last_chunks()
    finally:
        await run.aclose()


async def _response_frames(run: RunSource, builder: ResponseBuilder) -> AsyncIterator[bytes]:
    try:
        yield builder.opening()
        async for batch in run.batches():
            if not batch:
                yield _KEEP_ALIVE
                continue
            if _gap(batch):
                yield builder.failed("the stream fell behind and lost events", "gap")
                return
            out = b"".join(builder.token(token) for token in _tokens(batch))
            if out:
                yield out
        failure = _failure(run)
        if failure is not None:
            yield builder.failed(*failure)
            return
        yield (b"" if builder.streamed else builder.answer(run.values)) + builder.completed()
    finally:
        await run.aclose()

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

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chronos.errors import ClientGone, RequestRefused
from chronos.server._body import read_json_object
from chronos.server._runs import Runs
from chronos.server.dialects._openai_chat import ChatCompletion
from chronos.server.dialects._openai_responses import Response as ResponseBuilder
from chronos.server.dialects._run import RunSource, start_run
from chronos.stream import GAP, Event

__all__ = ["openai_routes"]

_CHAT_FIELDS: Final = frozenset({"model", "messages", "stream", "stream_options", "n"})
_RESPONSES_FIELDS: Final = frozenset({"model", "input", "instructions", "stream"})
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_KEEP_ALIVE: Final = b": keep-alive\n\n"
_DISCONNECT_CHECK_SECONDS: Final = 1.0  # how often a non-streaming request looks for its client
_ERROR_TYPES: Final = {400: "invalid_request_error", 403: "permission_error",
                       404: "invalid_request_error", 409: "conflict_error",
                       413: "invalid_request_error"}


class _Invalid(Exception):
    """A request OpenAI would refuse: its status, message, offending parameter and code."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


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
        except _Invalid as exc:
            return _error(exc.status, exc.message, exc.param, exc.code)
        except ClientGone:
            raise
        except RequestRefused as exc:
            # The body readers say 422 for JSON that does not parse; OpenAI says 400.
            status = 400 if exc.status_code == 422 else exc.status_code
            return _error(status, exc.detail)

    return guarded


def _body_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in body:
        if name not in allowed:
            raise _Invalid(400, f"Unsupported parameter: '{name}' is not supported by a Chronos "
                                f"graph (the graph chooses its model and settings)",
                           name, "unsupported_parameter")


def _string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _Invalid(400, f"'{name}' is required and must be a non-empty string", name,
                       "missing_required_parameter" if value is None else "invalid_type")
    return value


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Invalid(400, f"'{name}' must be a boolean", name, "invalid_type")
    return value


def _graph(runs: Runs, body: Mapping[str, Any]) -> str:
    model = _string(body, "model")
    if model not in runs.assistants.served:
        raise _Invalid(404, f"The model '{model}' does not exist: the graphs served are "
                            f"{sorted(runs.assistants.served)}", "model", "model_not_found")
    return model


def _chat_messages(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _Invalid(400, f"'{name}' must be a non-empty array of messages", name,
                       "invalid_type")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _Invalid(400, f"'{name}[{i}]' must be an object", f"{name}[{i}]",
                           "invalid_type")
        if message.get("role") not in _ROLES:
            raise _Invalid(400, f"'{name}[{i}].role' must be one of {sorted(_ROLES)}",
                           f"{name}[{i}].role", "invalid_value")
    return value


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Responses `input` (text, or message / function_call / function_call_output items) as
    chat messages, after `instructions` as a system message."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _Invalid(400, "'instructions' must be a string", "instructions",
                           "invalid_type")
        messages.append({"role": "system", "content": instructions})
    value = body.get("input")
    if isinstance(value, str) and value:
        return [*messages, {"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _Invalid(400, "'input' must be a non-empty string or array of input items",
                       "input", "invalid_type")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Invalid(400, f"'input[{i}]' must be an object", f"input[{i}]", "invalid_type")
        messages.append(_input_item(item, f"input[{i}]"))
    return messages


def _input_item(item: Mapping[str, Any], name: str) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "function_call":
        return {"role": "assistant", "content": "", "tool_calls": [{
            "id": item.get("call_id"), "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}]}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"),
                "content": item.get("output") if isinstance(item.get("output"), str) else ""}
    if kind != "message":
        raise _Invalid(400, f"'{name}.type' {kind!r} is not supported: use message, "
                            f"function_call or function_call_output items",
                       f"{name}.type", "unsupported_value")
    role = item.get("role")
    if role not in _ROLES:
        raise _Invalid(400, f"'{name}.role' must be one of {sorted(_ROLES)}", f"{name}.role",
                       "invalid_value")
    content = item.get("content")
    if isinstance(content, list):  # input_text / output_text parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    elif not isinstance(content, str):
        raise _Invalid(400, f"'{name}.content' must be a string or an array of content parts",
                       f"{name}.content", "invalid_type")
    return {"role": role, "content": content}


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
    async for batch in run.batches(heartbeat=_DISCONNECT_CHECK_SECONDS):
        if _gap(batch):
            return False
        for token in _tokens(batch):
            each(token)
        if not batch and await request.is_disconnected():
            return False
    return True


def openai_routes(runs: Runs) -> list[Route]:
    """The routes, for the app `create_app` builds."""

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            _model(s.graph_id) for s in runs.assistants.served.values()]})

    async def model(request: Request) -> Response:
        graph_id = request.path_params["model"]
        if graph_id not in runs.assistants.served:
            raise _Invalid(404, f"The model '{graph_id}' does not exist", "model",
                           "model_not_found")
        return JSONResponse(_model(graph_id))

    async def chat(request: Request) -> Response:
        body = await read_json_object(request)
        _body_fields(body, _CHAT_FIELDS)
        graph_id = _graph(runs, body)
        messages = _chat_messages(body.get("messages"), "messages")
        stream = _flag(body, "stream")
        if body.get("n") not in (None, 1):
            raise _Invalid(400, "'n' must be 1: a graph gives one answer", "n",
                           "unsupported_value")
        options = body.get("stream_options")
        if options is not None and not stream:
            raise _Invalid(400, "'stream_options' is only allowed when 'stream' is true",
                           "stream_options", "invalid_value")
        options = options or {}
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise _Invalid(400, "'stream_options' may only have 'include_usage'",
                           "stream_options", "unsupported_parameter")
        include_usage = _flag(options, "include_usage")
        run = await start_run(runs, request, graph_id, {"messages": messages})
        completion = ChatCompletion(f"chatcmpl-{run.run_id}", graph_id,
                                    include_usage=include_usage)
        if stream:
            return _event_stream(_chat_frames(run, completion))
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
        return JSONResponse(completion.whole())

    async def responses(request: Request) -> Response:
        body = await read_json_object(request)
        _body_fields(body, _RESPONSES_FIELDS)
        graph_id = _graph(runs, body)
        messages = _responses_messages(body)
        stream = _flag(body, "stream")
        run = await start_run(runs, request, graph_id, {"messages": messages})
        builder = ResponseBuilder(f"resp_{run.run_id.replace('-', '')}", graph_id)
        if stream:
            return _event_stream(_response_frames(run, builder))
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
        return JSONResponse(builder.body())

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


def _event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


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
            out = b""
            for token in _tokens(batch):
                delta = completion.delta(token)
                if delta is not None:
                    out += completion.chunk(delta)
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

"""The `/runs` and `/threads/{thread_id}/runs` routes: stream, create, wait, join, cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chronos.errors import RequestRefused
from chronos.server._body import read_json_object
from chronos.server._response import JSONResponse
from chronos.server._run_record import RunInfo, RunRecord
from chronos.server._run_request import RunRequest, parse_run_request
from chronos.server._runs import Runs
from chronos.server._stream import open_subscription, run_stream_response, trace_headers
from chronos.server._stream_modes import STREAM_MODES
from chronos.server._threads import Action, ThreadRecord

__all__ = ["run_routes"]

_FIRST_EVENT = "0-0"  # the id before every event, in the form both brokers issue
_RUN_STATUSES = ("pending", "running", "error", "success", "timeout", "interrupted")
_MESSAGES = ("messages", "messages-tuple")


def _headers(record: RunRecord, stateless: bool) -> dict[str, str]:
    """Where the run is, and its trace context when traced."""
    if stateless:
        where = f"/runs/{record.run_id}"
    else:
        where = f"/threads/{record.thread_id}/runs/{record.run_id}"
    return {"Content-Location": where, **trace_headers(record.traceparent)}


def run_routes(runs: Runs) -> list[Route]:
    threads = runs.threads

    async def request_and_thread(request: Request) -> tuple[RunRequest, ThreadRecord, bool]:
        body = await read_json_object(request)
        run_request = parse_run_request(body, default_disconnect="continue")
        thread_id = request.path_params.get("thread_id")
        if thread_id is None:
            temporary = run_request.on_completion == "delete"
            return run_request, await threads.create(request, temporary=temporary), True
        if run_request.if_not_exists == "create" and await threads.find(thread_id) is None:
            return run_request, await threads.create(request, thread_id), False
        return run_request, await threads.get(request, thread_id, "run"), False

    async def started(request: Request, thread: ThreadRecord, run_request: RunRequest,
                      stateless: bool) -> RunRecord:
        try:
            return await runs.start(thread, run_request,
                                    traceparent=request.headers.get("traceparent", ""))
        except BaseException:
            if stateless:
                await threads.remove(thread.thread_id)
            raise

    async def stream(request: Request) -> Response:
        run_request, thread, stateless = await request_and_thread(request)
        subscription = open_subscription(runs.broker, thread.thread_id)
        try:
            record = await started(request, thread, run_request, stateless)
        except BaseException:
            await subscription.aclose()
            raise
        headers = _headers(record, stateless)
        if not stateless:
            headers["Location"] = f"{headers['Content-Location']}/stream"
        return run_stream_response(
            record.run_id, subscription, modes=run_request.stream_modes,
            subgraphs=run_request.stream_subgraphs, started=False, send_metadata=True,
            metrics=runs.metrics, traceparent=record.traceparent,
            on_disconnect=(lambda: runs.request_cancel(record.info()))
            if run_request.on_disconnect == "cancel" else None, headers=headers)

    async def create(request: Request) -> Response:
        run_request, thread, stateless = await request_and_thread(request)
        record = await started(request, thread, run_request, stateless)
        return JSONResponse(record.describe(), headers=_headers(record, stateless))

    async def wait(request: Request) -> Response:
        run_request, thread, stateless = await request_and_thread(request)
        record = await started(request, thread, run_request, stateless)
        await record.done.wait()
        return JSONResponse(record.result(), headers=_headers(record, stateless))

    async def list_runs(request: Request) -> Response:
        thread = await threads.get(request, request.path_params["thread_id"])
        status = request.query_params.get("status")
        if status is not None and status not in _RUN_STATUSES:
            raise RequestRefused(422, f"parameter 'status' must be one of {list(_RUN_STATUSES)}")
        limit = _int_param(request, "limit", 10)
        offset = _int_param(request, "offset", 0)
        found = [r.describe() for r in await runs.of_thread(thread.thread_id)
                 if status is None or r.status == status]
        return JSONResponse(found[offset:offset + limit])

    async def find(request: Request, action: Action = "read") -> RunInfo:
        thread_id = request.path_params["thread_id"]
        await threads.get(request, thread_id, action)
        return await runs.get(thread_id, request.path_params["run_id"])

    async def get(request: Request) -> Response:
        return JSONResponse((await find(request)).describe())

    async def delete(request: Request) -> Response:
        await runs.cancel(await find(request, "cancel"), action="rollback")
        return Response(status_code=204)

    async def cancel(request: Request) -> Response:
        run = await find(request, "cancel")
        action = request.query_params.get("action", "interrupt")
        if action not in ("interrupt", "rollback"):
            raise RequestRefused(422, "parameter 'action' must be 'interrupt' or 'rollback'")
        if request.query_params.get("wait", "0").lower() in ("1", "true"):
            await runs.cancel(run, action=action)
            return Response(status_code=200)
        runs.request_cancel(run, action=action)
        return Response(status_code=202)

    async def join(request: Request) -> Response:
        run = await find(request)
        await runs.finished(run)
        return JSONResponse((await runs.get(run.thread_id, run.run_id)).result)

    async def join_stream(request: Request) -> Response:
        run = await find(request)
        # The SDK sends `stream_mode=` (empty) when it has none to ask for.
        asked = tuple(m for m in request.query_params.getlist("stream_mode") if m) or run.modes
        unknown = [m for m in asked if m not in STREAM_MODES]
        if unknown:
            raise RequestRefused(422, f"parameter 'stream_mode' has unsupported modes {unknown}")
        modes = _joined_modes(asked, run.modes)
        last_event_id = (request.headers.get("last-event-id")
                         or request.query_params.get("last_event_id") or None)
        # "-1" (what useStream sends first) asks for the run from its start: the thread's
        # retained events, of which the translator keeps those after the run's start marker.
        from_start = last_event_id == "-1"
        subscription = open_subscription(runs.broker, run.thread_id,
                                          _FIRST_EVENT if from_start else last_event_id)
        # Read again once subscribed: a run that ends from now on ends the stream too.
        run = await runs.get(run.thread_id, run.run_id)
        if run.finished and last_event_id is None:
            await subscription.aclose()
            return StreamingResponse(iter(()), media_type="text/event-stream")
        cancel_on_disconnect = request.query_params.get(
            "cancel_on_disconnect", "false").lower() in ("1", "true")
        return run_stream_response(
            run.run_id, subscription, modes=modes, subgraphs=run.subgraphs,
            started=not from_start and (run.status != "pending" or last_event_id is not None),
            send_metadata=from_start, metrics=runs.metrics, traceparent=run.traceparent,
            on_disconnect=(lambda: runs.request_cancel(run)) if cancel_on_disconnect else None)

    async def cancel_many(request: Request) -> Response:
        body = await read_json_object(request)
        action = request.query_params.get("action", "interrupt")
        if action not in ("interrupt", "rollback"):
            raise RequestRefused(422, "parameter 'action' must be 'interrupt' or 'rollback'")
        run_ids = body.get("run_ids") or []
        thread_id = body.get("thread_id")
        for thread in await threads.all():
            if (thread_id is not None and thread.thread_id != thread_id) or \
                    not await threads.allows(request, thread, "cancel"):
                continue
            for run in await runs.of_thread(thread.thread_id):
                if not run.finished and (not run_ids or run.run_id in run_ids):
                    runs.request_cancel(run, action=action)
        return Response(status_code=204)

    return [
        Route("/runs/stream", stream, methods=["POST"]),
        Route("/runs/wait", wait, methods=["POST"]),
        Route("/runs", create, methods=["POST"]),
        Route("/runs/cancel", cancel_many, methods=["POST"]),
        Route("/threads/{thread_id}/runs/stream", stream, methods=["POST"]),
        Route("/threads/{thread_id}/runs/wait", wait, methods=["POST"]),
        Route("/threads/{thread_id}/runs", create, methods=["POST"]),
        Route("/threads/{thread_id}/runs", list_runs, methods=["GET"]),
        Route("/threads/{thread_id}/runs/{run_id}", get, methods=["GET"]),
        Route("/threads/{thread_id}/runs/{run_id}", delete, methods=["DELETE"]),
        Route("/threads/{thread_id}/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/threads/{thread_id}/runs/{run_id}/join", join, methods=["GET"]),
        Route("/threads/{thread_id}/runs/{run_id}/stream", join_stream, methods=["GET"]),
    ]


def _joined_modes(asked: tuple[str, ...], started: tuple[str, ...]) -> tuple[str, ...]:
    """What a join streams: a run published what its own modes need, so a join gets those of
    them it asks for, as on LangGraph's server, whose joins filter the run's stored stream
    (where either messages mode asked matches the run's messages, in the run's format)."""
    modes = [m for m in asked if m in started]
    if any(m in _MESSAGES for m in asked):
        modes += [m for m in started if m in _MESSAGES]
    return tuple(dict.fromkeys(modes))


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise RequestRefused(422, f"parameter {name!r} must be a non-negative integer")
    return int(value)

"""The demo's web app: start runs of the demo graph, resume them, stream them to browsers.

Runs live in an anyio task group that the app's lifespan owns, each in a cancel scope of its
own, so that shutdown cancels them (a llama.cpp generation stops at its next token) and no
task outlives the app. Every event of a run goes to the broker, the session id as topic.

A browser that opens a session's stream without a `Last-Event-ID` gets the session from its
beginning: before a run starts, the app publishes a `session` marker to the topic and keeps
its id as the session's cursor, which such a connection resumes after. The broker's replay
then delivers exactly the run's events, with nothing missed and nothing twice, to a tab that
opens the page late, and the usual resume to one that reconnects.
"""

from __future__ import annotations

import importlib.resources
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import anyio
import anyio.abc
import orjson
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chronos.demo._graph import build_graph, graph_layout
from chronos.graph import Runner, RunState
from chronos.model import Provider
from chronos.server import exception_handlers, read_body
from chronos.store import CheckpointStore, MemoryStore
from chronos.stream import Broker, Event

__all__ = ["DemoApp", "create_app"]

_log = logging.getLogger("chronos.demo")

_MAX_PROMPT: Final = 4000  # characters; the local model's context is 2048 tokens
_MAX_BODY: Final = 64 * 1024  # bytes: a longest prompt, escaped, fits many times over
# A session's events stay replayable for an hour, so that a tab reloaded while the run
# waits for a review still shows it all.
_REPLAY_EVENTS: Final = 20_000
_REPLAY_SECONDS: Final = 3600.0
# A run publishes its interrupt event just before its task ends: a resume that comes quicker
# than that (a fast click, a script) waits this long for the task rather than being refused.
_SETTLE_SECONDS: Final = 1.0


@dataclass
class _Session:
    id: str
    prompt: str
    cursor: str  # the id of the session's marker event: its events are those after it
    status: str = "running"  # then a RunState status: "paused", "completed", "failed", ...
    idle: anyio.Event | None = None  # set when the task running the session ends
    ended: float | None = None  # when that task ended (anyio's clock); None while it runs
    usage: dict[str, Any] | None = None  # the model usage and cost as the last run ended


class _Runs:
    """The sessions this app started, and the tasks that run them."""

    def __init__(self, runner: Runner, broker: Broker, *, owns_store: bool) -> None:
        self.runner = runner
        self.broker = broker
        self.sessions: dict[str, _Session] = {}
        # A session is forgotten once its task has been over this long: its events have left
        # the broker's replay, so no page could show it again (a review left waiting that
        # long goes too). Checked when a run starts, so the table is bounded by the runs of
        # one window; so are the checkpoints, when the store is the app's own (a store the
        # user passed keeps its history).
        self.forget_after = _REPLAY_SECONDS
        self.owns_store = owns_store
        self.group: anyio.abc.TaskGroup | None = None
        self.closed = False
        self._scopes: set[anyio.CancelScope] = set()
        self._drained: anyio.Event | None = None

    @property
    def accepting(self) -> bool:
        """Whether new runs may start: the lifespan has begun and shutdown has not."""
        return self.group is not None and not self.closed

    async def start(self, prompt: str) -> _Session:
        await self._forget_ended()
        session_id = f"demo-{uuid.uuid4().hex[:12]}"
        async with self.broker.subscribe(f"{session_id}-cursor", [session_id]) as probe:
            self.broker.publish(Event("session", {"session_id": session_id}), session_id)
            marker = await probe.__anext__()
        assert marker.id is not None  # the broker stamps every event it publishes
        session = _Session(session_id, prompt, marker.id)
        self.sessions[session_id] = session
        self._launch(session, lambda: self.runner.run(session_id, {"prompt": prompt}))
        return session

    async def _forget_ended(self) -> None:
        horizon = anyio.current_time() - self.forget_after
        for session in list(self.sessions.values()):
            if session.ended is not None and session.ended <= horizon:
                del self.sessions[session.id]
                if self.owns_store and self.runner.store is not None:
                    await self.runner.store.delete_session(session.id)

    def resume(self, session: _Session, approved: bool) -> None:
        session.status = "running"  # before any await: a second press is refused (409)
        self._launch(session, lambda: self.runner.resume(session.id, {"approved": approved}))

    def _launch(self, session: _Session, call: Callable[[], Awaitable[RunState]]) -> None:
        if self.group is None or self.closed:
            raise RuntimeError("the demo app is not running (its lifespan has not started)")
        session.idle = anyio.Event()
        session.ended = None
        # Registered before the task starts, so that `stop` cancels a run that has not begun.
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        self.group.start_soon(self._drive, session, call, scope, session.idle,
                              name=f"demo run {session.id}")

    async def _drive(
        self,
        session: _Session,
        call: Callable[[], Awaitable[RunState]],
        scope: anyio.CancelScope,
        idle: anyio.Event,
    ) -> None:
        with scope:
            try:
                result = await call()
                session.status, session.usage = result.status, _usage(result)
            except Exception as exc:
                # The run's `error` event told the browsers; the server's log gets a line.
                session.status = "failed"
                _log.warning("demo run %s failed: %s", session.id, exc)
            finally:
                if scope.cancel_called:
                    session.status = "cancelled"
                self._scopes.discard(scope)
                session.ended = anyio.current_time()
                idle.set()
                if not self._scopes and self._drained is not None:
                    self._drained.set()

    async def stop(self) -> None:
        """Cancel every run, wait until they have ended, and refuse new ones."""
        self.closed = True
        if self._scopes:
            if self._drained is None:  # a second caller waits for the same runs
                self._drained = anyio.Event()
            for scope in list(self._scopes):
                scope.cancel()
            await self._drained.wait()


class _SessionEvents:
    """GET /runs/{session_id}/events: the session's events over SSE, replayed as needed.

    A class, so that Starlette's `Route` hands it the raw ASGI call for a stream.
    """

    def __init__(self, runs: _Runs) -> None:
        self.runs = runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.runs.sessions.get(scope["path_params"]["session_id"])
        if session is None:
            await _error(404, "unknown session")(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        resumed = Headers(scope=scope).get("last-event-id") or any(
            value for name, value in query if name in ("last_event_id", "lastEventId")
        )
        if not resumed:  # a new reader: from the session's start
            query.append(("last_event_id", session.cursor))
            scope = {**scope, "query_string": urlencode(query).encode("latin-1")}
        handler = self.runs.broker.sse_handler(topics=[session.id], retry=1000)
        await handler(scope, receive, send)


class DemoApp:
    """The demo's ASGI app (see `chronos.demo`); `await app.aclose()` ends its streams.

    ASGI servers wait for open responses before they shut down and tell them nothing, so
    call `aclose()` when shutdown begins: it cancels the runs, then closes the broker, which
    ends every event stream at once. The app's lifespan does the same when it ends.
    """

    def __init__(
        self,
        provider: Provider,
        store: CheckpointStore | None = None,
        *,
        max_tokens: int | None = 200,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.graph = build_graph(provider, max_tokens=max_tokens, temperature=temperature,
                                 seed=seed)
        # A reader may replay a whole session at once: its buffer holds as much as the replay.
        self.broker = Broker(max_pending=_REPLAY_EVENTS, replay_events=_REPLAY_EVENTS,
                             replay_seconds=_REPLAY_SECONDS)
        self.runner = Runner(self.graph, store if store is not None else MemoryStore(),
                             self.broker)
        self._runs = _Runs(self.runner, self.broker, owns_store=store is None)
        self._layout = orjson.dumps(graph_layout(self.graph))
        self._page = importlib.resources.files("chronos.demo").joinpath("page.html").read_bytes()
        self._app = Starlette(
            routes=[
                Route("/", self._show_page),
                Route("/graph", self._show_graph),
                Route("/runs", self._start, methods=["POST"]),
                Route("/runs/{session_id}", self._status),
                Route("/runs/{session_id}/resume", self._resume, methods=["POST"]),
                Route("/runs/{session_id}/usage", self._usage),
                Route("/runs/{session_id}/events", _SessionEvents(self._runs)),
            ],
            lifespan=self._lifespan,
            exception_handlers=exception_handlers,  # 413, and a client gone mid-body
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def aclose(self) -> None:
        """Cancel the runs in flight and end every event stream. Calling it again does nothing."""
        await self._runs.stop()
        await self.broker.aclose()

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._runs.group = group
            try:
                yield
            finally:
                self._runs.group = None  # no new runs from here on
                await self.aclose()

    async def _show_page(self, request: Request) -> Response:
        return HTMLResponse(self._page)

    async def _show_graph(self, request: Request) -> Response:
        return Response(self._layout, media_type="application/json")

    async def _start(self, request: Request) -> Response:
        body = await _json_object(request)
        prompt = body.get("prompt") if body is not None else None
        if not isinstance(prompt, str) or not prompt.strip():
            return _error(400, 'expected {"prompt": "some text"}')
        if len(prompt) > _MAX_PROMPT:
            return _error(400, f"the prompt is longer than {_MAX_PROMPT} characters")
        if not self._runs.accepting:
            return _error(503, "the demo is not running (its ASGI lifespan must be on)")
        session = await self._runs.start(prompt.strip())
        return JSONResponse(_describe(session), status_code=201)

    async def _status(self, request: Request) -> Response:
        session = self._runs.sessions.get(request.path_params["session_id"])
        if session is None:
            return _error(404, "unknown session")
        return JSONResponse(_describe(session))

    async def _usage(self, request: Request) -> Response:
        """The session's model tokens and cost per node and in total, as its last run ended.

        Asked when the page sees the run pause or complete, which it may see before the task
        running it has ended: so it waits for that, as a resume does.
        """
        session = self._runs.sessions.get(request.path_params["session_id"])
        if session is None:
            return _error(404, "unknown session")
        if session.status == "running" and session.idle is not None:
            with anyio.move_on_after(_SETTLE_SECONDS):
                await session.idle.wait()
        return JSONResponse(session.usage or {"nodes": {}, "total": None})

    async def _resume(self, request: Request) -> Response:
        session = self._runs.sessions.get(request.path_params["session_id"])
        if session is None:
            return _error(404, "unknown session")
        body = await _json_object(request)
        approved = body.get("approved") if body is not None else None
        if not isinstance(approved, bool):
            return _error(400, 'expected {"approved": true} or {"approved": false}')
        if session.status == "running" and session.idle is not None:
            with anyio.move_on_after(_SETTLE_SECONDS):
                await session.idle.wait()
        if session.status != "paused":
            return _error(409, f"the run is {session.status}, not waiting for a review")
        if not self._runs.accepting:
            return _error(503, "the demo is not running (its ASGI lifespan must be on)")
        self._runs.resume(session, approved)
        return JSONResponse(_describe(session), status_code=202)


def create_app(
    provider: Provider,
    store: CheckpointStore | None = None,
    *,
    max_tokens: int | None = 200,
    temperature: float | None = None,
    seed: int | None = None,
) -> DemoApp:
    """The demo's ASGI app, its graph's draft node streaming `provider`.

    Args:
        provider: the model the draft node asks (the app does not close it).
        store: where checkpoints go (the app does not close it); default: in memory.
        max_tokens: the longest draft, in tokens.
        temperature: sampling temperature (None: the provider's default).
        seed: sampling seed, for reproducible drafts.
    """
    return DemoApp(provider, store, max_tokens=max_tokens, temperature=temperature, seed=seed)


def _describe(session: _Session) -> dict[str, Any]:
    return {"session_id": session.id, "prompt": session.prompt, "status": session.status}


def _usage(result: RunState) -> dict[str, Any]:
    nodes = {node: {**usage.counts(), "cost": result.cost_by_node.get(node)}
             for node, usage in result.usage_by_node.items()}
    total = {**result.usage.counts(), "cost": result.cost} if nodes else None
    return {"nodes": nodes, "total": total}


def _error(status: int, detail: str) -> Response:
    return JSONResponse({"error": detail}, status_code=status)


async def _json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, None if it is not one; limited while it is read (413)."""
    try:
        body = orjson.loads(await read_body(request, _MAX_BODY))
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None

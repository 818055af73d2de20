"""`create_app`: graphs behind the LangGraph Agent Server API, as one Starlette app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chronos import __version__, config
from chronos.graph import CompiledGraph, StateGraph
from chronos.server._assistants import Assistants, assistant_routes
from chronos.server._errors import error_response, exception_handlers
from chronos.server._metrics import ServerMetrics
from chronos.server._record_limits import Retention
from chronos.server._records import MemoryRecords, Records
from chronos.server._response import JSONResponse
from chronos.server._routing import RouteIndex
from chronos.server._run_routes import run_routes
from chronos.server._runs import Runs
from chronos.server._threads import Authorize, Threads, thread_routes
from chronos.server.dialects.agui import agui_routes
from chronos.server.dialects.aisdk import aisdk_routes
from chronos.server.dialects.openai import openai_routes
from chronos.store import CheckpointStore
from chronos.stream import BrokerProtocol

__all__ = ["AgentServerApp", "create_app"]


class AgentServerApp(Starlette):
    """The app `create_app` returns: a Starlette app that can also be shut down early.

    `aclose()` cancels every run and closes what the app opened, which ends every open stream;
    a server calls it when shutdown begins, since it waits for open responses before the
    lifespan ends (see `chronos.server.serve`). The lifespan calls it too. Idempotent.
    """

    def __init__(self, runs: Runs, owned: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._runs = runs
        self._owned = owned

    async def aclose(self) -> None:
        await self._runs.aclose()
        owned, self._owned = self._owned, []
        for resource in owned:
            await resource.aclose()


def create_app(
    graphs: Mapping[str, StateGraph | CompiledGraph],
    store: CheckpointStore | None = None,
    broker: BrokerProtocol | None = None,
    *,
    authorize: Authorize | None = None,
    records: Records | None = None,
    retention: Retention | None = None,
) -> AgentServerApp:
    """An ASGI app serving `graphs` (by graph id) through the LangGraph Agent Server API, and
    through OpenAI's `/v1/chat/completions`, `/v1/responses` and `/v1/models` (the graph id as
    `model`), AG-UI's `/ag-ui/{graph_id}` and the AI SDK's `/ai-sdk/{graph_id}` (see
    `chronos.server.dialects`).

    ```python
    app = server.create_app({"agent": g})          # then: uvicorn.run(app, port=8123)
    client = langgraph_sdk.get_client(url="http://127.0.0.1:8123")
    async for part in client.runs.stream(None, "agent", input={"query": "hi"}):
        print(part.event, part.data)
    ```

    Args:
        graphs: graph id -> graph (a `StateGraph` is compiled here); each gets an assistant.
        store: where checkpoints go; default `CHRONOS_STORE_URL` (SQLite in the current folder).
        broker: where run events go; default `CHRONOS_BROKER_URL` (in-process).
            What the app creates itself it closes on shutdown; what it is given, it leaves open.
        authorize: who may see or act on which thread (see `Authorize`); None: everyone.
        records: where thread and run records live; default: in this process. Server
            processes that share a broker and a store must share these too
            (`RedisRecords`, as `chronos serve --broker redis://...` does).
        retention: how many thread and run records to keep, and how long (see `Retention`);
            default: 100 finished runs per thread, 100,000 threads, no time limit.
    """
    compiled = {gid: g.compile() if isinstance(g, StateGraph) else g for gid, g in graphs.items()}
    owned: list[Any] = []  # what this app opened, and so closes
    if store is None or broker is None:
        defaults = config.from_env()
        store = store or defaults.store
        broker = broker or defaults.broker
        owned = [defaults.store, defaults.broker]
    metrics = ServerMetrics()
    assistants = Assistants(compiled, store, broker, metrics)
    records = records if records is not None else MemoryRecords()
    threads = Threads(store, assistants, records, authorize)
    runs = Runs(assistants, threads, broker, records, metrics, retention or Retention())

    @contextlib.asynccontextmanager
    async def lifespan(app: AgentServerApp) -> AsyncIterator[None]:
        await runs.open()
        try:
            yield
        finally:
            await app.aclose()

    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def info(request: Request) -> Response:
        return JSONResponse({"version": __version__, "server": "chronos",
                             "flags": {"assistants": True, "crons": False}})

    async def prometheus(request: Request) -> Response:
        if metrics.registry is None:
            return error_response(501, "/metrics needs prometheus-client: "
                                       "pip install 'chronos-stream[prometheus]'")
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, exc.detail)

    handlers: dict[Any, Any] = {**exception_handlers, HTTPException: http_error}
    # Tried by the path's first segment (`RouteIndex`), in this order within it: the run
    # routes, which most requests take, first.
    routes = [*run_routes(runs), Route("/ok", ok, methods=["GET"]),
              Route("/info", info, methods=["GET"]), Route("/metrics", prometheus, methods=["GET"]),
              *assistant_routes(assistants), *thread_routes(threads, runs.delete_thread),
              *openai_routes(runs),
              *agui_routes(runs), *aisdk_routes(runs)]
    return AgentServerApp(runs, owned, routes=[RouteIndex(routes)], lifespan=lifespan,
                          exception_handlers=handlers)

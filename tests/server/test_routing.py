"""The app's route index chooses the route Starlette's router would, trying fewer."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Match, Route, Router

from chronos import server, store, stream
from chronos.server._routing import RouteIndex
from tests.server.graphs import agent

_PATHS = ["/runs/stream", "/runs", "/runs/x", "/threads", "/threads/", "/threads/search",
          "/threads/t1", "/threads/t1/runs/stream", "/threads/t1/runs/r1",
          "/threads/t1/runs/r1/cancel", "/threads/t1/state/c1", "/threads/t1/history",
          "/ok", "/info", "/metrics", "/assistants/search", "/assistants/a/graph",
          "/v1/models", "/v1/models/a/b", "/v1/chat/completions", "/v1/responses",
          "/ag-ui/agent", "/ag-ui/agent/connect", "/ai-sdk/agent", "/ai-sdk/agent/c1/stream",
          "/", "", "/nowhere", "/v1", "/threadsx"]


def _routes() -> list[Route]:
    app = server.create_app({"agent": agent}, store=store.MemoryStore(),
                            broker=stream.Broker())
    [index] = app.routes
    assert isinstance(index, RouteIndex)
    return index.routes


def _chosen(routes: list[Any], scope: dict[str, Any]) -> tuple[Match, Any]:
    """The route Starlette's router hands the request to (as `Router.app` picks it)."""
    partial = None
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return match, child_scope.get("route", route)
        if match is Match.PARTIAL and partial is None:
            partial = child_scope.get("route", route)
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH", "HEAD"])
def test_the_index_chooses_the_route_starlette_would(method: str) -> None:
    routes = _routes()
    index = RouteIndex(routes)
    for path in _PATHS:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        assert _chosen([index], scope) == _chosen(routes, scope), (method, path)


def test_the_index_finds_urls_and_refuses_a_first_segment_it_cannot_index() -> None:
    async def endpoint(request: Any) -> None: ...

    index = RouteIndex([Route("/a/{x}", endpoint, name="a"), Route("/b", endpoint, name="b")])
    assert Router([index]).url_path_for("a", x="1") == "/a/1"
    with pytest.raises(ValueError, match="first segment"):
        RouteIndex([Route("/{x}/y", endpoint)])

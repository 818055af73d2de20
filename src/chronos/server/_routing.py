"""`RouteIndex`: the app's routes, tried only when the request's path begins as theirs do.

Starlette's router tries its routes in order, each with a regular expression: an OpenAI
`/v1/chat/completions` request was the 33rd route tried (20 µs), an AG-UI run the 35th. Every
route here begins with a literal segment (`/threads`, `/v1`, ...), and a path can only match
routes that begin with its own first segment; so the index keeps them by that segment, in
their order, and a request tries only its segment's. The route chosen is the one Starlette
would choose: the first that matches fully, else the first that matches but for the method
(a 405).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

__all__ = ["RouteIndex"]


class RouteIndex(BaseRoute):
    """`routes` as one route of a Starlette app, tried by the request path's first segment."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self._by_segment: dict[str, list[Route]] = {}
        for route in self.routes:
            segment = _first_segment(route.path)
            if "{" in segment:
                raise ValueError(f"{route.path!r}: a route's first segment must be literal")
            self._by_segment.setdefault(segment, []).append(route)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        partial: tuple[Match, Scope] = Match.NONE, {}
        for route in self._by_segment.get(_first_segment(get_route_path(scope)), ()):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                # The router sets `scope["route"]` to this index, then updates the scope with
                # this: the route that matched is what the scope names, and what `handle` runs.
                return match, {**child_scope, "route": route}
            if match is Match.PARTIAL and partial[0] is Match.NONE:
                partial = match, {**child_scope, "route": route}
        return partial

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["route"].handle(scope, receive, send)


def _first_segment(path: str) -> str:
    """`"v1"` of `"/v1/chat/completions"`; `""` of `"/"` (a path in ASGI begins with "/")."""
    return path[1:].partition("/")[0]

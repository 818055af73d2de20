"""Errors as the Agent Server API answers them: a status code and `{"detail": "..."}`.

Route code raises `chronos.errors.RequestRefused`; the app turns it (and the chronos errors
that mean bad input) into that shape, which the LangGraph SDKs read into their typed
exceptions (`NotFoundError`, `ConflictError`, `UnprocessableEntityError`...).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from chronos.errors import ClientGone, InvalidLastEventID, RequestRefused
from chronos.server._response import JSONResponse

__all__ = ["error_response", "exception_handlers"]


def error_response(status_code: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status_code)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused)
    return error_response(exc.status_code, exc.detail)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Never delivered (the client left); answering keeps the server from logging a traceback.
    return Response(status_code=400)


async def _bad_last_event_id(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidLastEventID)
    return error_response(400, str(exc))


exception_handlers = {
    RequestRefused: _refused,
    ClientGone: _client_gone,
    InvalidLastEventID: _bad_last_event_id,
}

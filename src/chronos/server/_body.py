"""Request bodies, read with a size limit while they arrive: the one way every route reads.

A body larger than the limit is refused (413) as soon as the limit is passed, so a huge POST
never sits in memory; a client that disconnects mid-body is not an error (`ClientGone`, which
the app answers quietly).
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request

from chronos.errors import ClientGone, RequestRefused

__all__ = ["MAX_BODY_BYTES", "read_body", "read_json_object"]

MAX_BODY_BYTES: Final = 10 * 1024 * 1024


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or `RequestRefused(413)` once more than `limit` bytes are announced or sent.

    Raises:
        RequestRefused: 413, the body is too large.
        ClientGone: the client disconnected before sending all of it.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestRefused(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestRefused(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ClientGone() from exc
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}`.

    Raises:
        RequestRefused: 413 too large, 422 not JSON or not an object.
        ClientGone: the client disconnected mid-body.
    """
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRefused(422, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RequestRefused(422, "request body must be a JSON object")
    return value

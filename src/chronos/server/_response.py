"""The JSON responses of the Agent Server API routes: Starlette's, encoded by orjson.

Starlette's `JSONResponse` encodes with the standard library's `json`: 15 us for a
`runs.wait` result of the benchmark graph against 5 with orjson (BENCHMARKS.md, waitrate
branch), on the way of every run a client waits for (`threads.create`, then `runs.wait`).
The bytes are the same (compact, UTF-8, keys made strings) but for NaN and the infinities,
which `json` refuses (a 500) and orjson writes as `null`; what orjson cannot write (an
integer beyond 64 bits) is encoded as Starlette does.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette import responses

__all__ = ["JSONResponse"]


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:
            return super().render(content)

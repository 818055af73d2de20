"""The routes' JSON responses: Starlette's bytes, encoded by orjson."""

from __future__ import annotations

from typing import Any

import pytest
from starlette import responses

from chronos.server._response import JSONResponse

VALUES = {"topic": "w", "steps": ["plan", "write"], "draft": "é ✓ \U0001f600 \"q\" \\ \n",
          "n": -3, "x": 0.1, "big": 2**63 - 1, "none": None, "ok": True, "nested": {"a": [{}]},
          1: "an int key"}


@pytest.mark.parametrize("content", [VALUES, [VALUES, []], "text", None, {"huge": 2**70}])
def test_the_bytes_are_starlettes(content: Any) -> None:
    assert JSONResponse(content).body == responses.JSONResponse(content).body


def test_nan_and_the_infinities_are_null_not_a_server_error() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        responses.JSONResponse({"x": float("nan")})
    response = JSONResponse({"x": float("nan"), "y": float("inf"), "z": float("-inf")})
    assert response.body == b'{"x":null,"y":null,"z":null}'
    assert response.headers["content-type"] == "application/json"

"""`serve`: run the demo app under uvicorn, as `chronos demo` does (`chronos.server.serve`)."""

from __future__ import annotations

from chronos.server import bind, serve

__all__ = ["bind", "serve"]

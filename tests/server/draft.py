"""What the model node of both served test graphs streams (`graphs.py`, `reference_graphs.py`).

Its own module, without LangGraph: `chronos serve tests.server.graphs:agent` then loads what a
user's server would, not LangGraph, LangChain and pydantic besides (1,800 modules, whose
objects each full garbage collection walked).
"""

from __future__ import annotations

TOKEN_COUNT = 200


def draft_tokens(topic: str) -> list[str]:
    """The tokens the model node streams: the same on both servers."""
    return [f"{topic}{index} " for index in range(TOKEN_COUNT)]

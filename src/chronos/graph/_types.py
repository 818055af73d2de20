"""Input aliases for building graphs: what a node, a router and a reducer may be."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal

__all__ = [
    "END",
    "START",
    "NodeFunction",
    "Reducer",
    "Router",
    "State",
    "StreamMode",
    "Update",
]

START: Final = "__start__"
"""The virtual node before the entry point: `add_edge(START, "first")` sets the entry point."""

END: Final = "__end__"
"""The virtual node after a finish point: `add_edge("last", END)` ends the run there."""

State = dict[str, Any]
"""A graph's state: a mapping of string keys to JSON-serialisable values."""

Update = Mapping[str, Any] | None
"""What a node returns: the keys it changed (or the state it was given), or None for no change."""

NodeFunction = Callable[[State], Update | Awaitable[Update]]
"""A node: a sync or async function of the state."""

Router = Callable[[State], str | Sequence[str]]
"""A conditional edge: returns the next node id (or several, to run them in parallel)."""

Reducer = Callable[[Any, Any], Any]
"""Combines a key's current value with a node's new value into the next value."""

StreamMode = Literal["values", "updates", "messages", "custom", "tasks", "checkpoints", "debug"]
"""What a `runner.stream()` subscriber receives; see `Runner.stream`."""

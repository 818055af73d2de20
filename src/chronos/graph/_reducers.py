"""Reducers: how a node's new value for a key combines with the value already there.

Keys without a reducer are replaced. Parallel branches that write the same key are merged by
applying their updates one after another, in the order the branches were scheduled, so the
result never depends on which branch happened to finish first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["append", "merge", "replace"]


def replace(current: Any, new: Any) -> Any:
    """Keep the new value (the default for every key)."""
    return new


def append(current: Any, new: Any) -> list[Any]:
    """Extend a list: `append([1], [2, 3]) == [1, 2, 3]`; a single non-list value is appended.

    ```python
    g = graph.StateGraph("chat", reducers={"messages": graph.append})
    ```
    """
    base: list[Any] = [] if current is None else list(current)
    if isinstance(new, (list, tuple)):
        base.extend(new)
    else:
        base.append(new)
    return base


def merge(current: Any, new: Any) -> dict[str, Any]:
    """Merge mappings, the new keys winning: `merge({"a": 1}, {"b": 2}) == {"a": 1, "b": 2}`."""
    if not isinstance(new, Mapping):
        raise TypeError(f"merge reducer needs a mapping, got {type(new).__name__}")
    base: dict[str, Any] = {} if current is None else dict(current)
    base.update(new)
    return base

"""The JSON Patch (RFC 6902) that turns one state into the next, for AG-UI's STATE_DELTA.

```python
diff({"n": 1, "log": ["a"]}, {"n": 2, "log": ["a", "b"]})
# [{"op": "replace", "path": "/n", "value": 2}, {"op": "add", "path": "/log/-", "value": "b"}]
```

States change by node updates, mostly new keys, replaced values and lists that grow at the end
(messages), so those are what the patch says precisely; any other change to a list replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["diff"]


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The operations that make `before` equal to `after` (both JSON values)."""
    if before == after:
        return []
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        ops: list[dict[str, Any]] = []
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
        for key, value in after.items():
            if key not in before:
                ops.append({"op": "add", "path": f"{path}/{_escape(key)}", "value": value})
            else:
                ops.extend(diff(before[key], value, f"{path}/{_escape(key)}"))
        return ops
    if isinstance(before, list) and isinstance(after, list) and \
            len(after) > len(before) and after[:len(before)] == before:
        return [{"op": "add", "path": f"{path}/-", "value": v} for v in after[len(before):]]
    return [{"op": "replace", "path": path, "value": after}]


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")

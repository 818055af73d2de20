"""The `chronos.server` log: a WARNING each time the server goes on past a failure.

```python
logging.basicConfig(level=logging.INFO)
# WARNING chronos.server: heartbeat failed error=ConnectionError
```

Background work (the heartbeat, the retention sweep) and a run's bookkeeping (its record, its
end marker) go on when Redis or a broker is away for a moment, and say so here. By the
exception's type only: its text may hold a URL with a password. The same fields are on the
record as `record.chronos`, for structured handlers. (A run's start and end are logged by
`chronos.graph`.)
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Final

__all__ = ["survived"]

_log: Final = logging.getLogger("chronos.server")


class survived:
    """Go on past an `Exception` in the block, logging `what` failed (with `fields`).

    A class named as a function, as `contextlib.suppress` is, and not a generator-based
    context manager: it brackets each run's markers and end records, several times a run.
    """

    __slots__ = ("_fields", "_what")

    def __init__(self, what: str, **fields: str) -> None:
        self._what = what
        self._fields = fields

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if not isinstance(exc, Exception):
            return False
        what = self._what
        logged = {**self._fields, "error": type(exc).__name__}
        _log.warning("%s failed %s", what, " ".join(f"{k}={v}" for k, v in logged.items()),
                     extra={"chronos": {"failed": what, **logged}})
        return True

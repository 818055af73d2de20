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

import contextlib
import logging
from collections.abc import Iterator
from typing import Final

__all__ = ["survived"]

_log: Final = logging.getLogger("chronos.server")


@contextlib.contextmanager
def survived(what: str, **fields: str) -> Iterator[None]:
    """Go on past an `Exception` in the block, logging `what` failed (with `fields`)."""
    try:
        yield
    except Exception as exc:
        logged = {**fields, "error": type(exc).__name__}
        _log.warning("%s failed %s", what, " ".join(f"{k}={v}" for k, v in logged.items()),
                     extra={"chronos": {"failed": what, **logged}})

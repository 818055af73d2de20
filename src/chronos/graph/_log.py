"""The `chronos.graph` log: one INFO line when a run starts and one when it ends.

```python
logging.basicConfig(level=logging.INFO)
# INFO chronos.graph: run end session=s1 run=3f2a... graph=chat status=completed
#      duration=1.204s steps=3 input_tokens=812 output_tokens=164 cost=0.00367
```

Nothing per step or token. The same fields are on the record as `record.chronos` (a dict),
for structured handlers (JSON logs). Never the state, messages or error text, which may
hold what users typed or secrets: a failure is logged by its exception type.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from chronos.graph._run import Run

__all__ = ["log_end", "log_start"]

_log: Final = logging.getLogger("chronos.graph")


def log_start(run: Run, *, resumed: bool) -> None:
    if _log.isEnabledFor(logging.INFO):
        _emit("run start", {"session": run.session_id, "run": run.run_id,
                            "graph": run.graph.id, "resumed": resumed})


def log_end(run: Run, status: str, error: BaseException | None = None) -> None:
    if not _log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "session": run.session_id, "run": run.run_id, "graph": run.graph.id, "status": status,
        "duration": round(time.time() - run.started_at, 3), "steps": run.steps,
    }
    if error is not None:
        fields["error"] = type(error).__name__
    if run.usage:
        fields.update(run.usage.total().counts())
        fields["cost"] = run.usage.total_cost()
    _emit("run end", fields)


def _emit(message: str, fields: dict[str, Any]) -> None:
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    _log.info("%s %s", message, text, extra={"chronos": fields})

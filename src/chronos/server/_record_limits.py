"""How many thread and run records a server keeps, and for how long.

Records live in memory (one process) or in Redis (several): without a bound, a server that
runs for months grows without end. A thread keeps its newest finished runs
(`runs_per_thread`); threads that are idle (no run executing or queued) go when they have not
changed for `thread_ttl` seconds, and the least recently changed idle ones go when there are
more than `max_threads`. Going means what `DELETE /threads/{id}` does: the thread's record and
its runs' records; its checkpoints stay in the checkpoint store.

```python
app = server.create_app(graphs, retention=server.Retention(thread_ttl=7 * 86400))
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chronos.errors import ConfigurationError
from chronos.server._run_record import RunInfo
from chronos.server._threads import ThreadRecord

__all__ = ["Retention", "runs_beyond", "threads_beyond"]


@dataclass(frozen=True, slots=True)
class Retention:
    """The bounds on a server's records; every process sweeps each `sweep_seconds`.

    Raises:
        ConfigurationError: a bound that is not positive.
    """

    runs_per_thread: int = 100  # finished runs kept per thread, the newest
    max_threads: int | None = 100_000  # None: no bound on the count
    thread_ttl: float | None = None  # seconds since an idle thread last changed; None: forever
    sweep_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("runs_per_thread", "max_threads", "thread_ttl", "sweep_seconds"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"Retention.{name} must be positive, not {value!r}")


def runs_beyond(runs: Sequence[RunInfo], keep: int) -> list[RunInfo]:
    """The finished runs of one thread beyond its newest `keep`."""
    finished = sorted((r for r in runs if r.finished), key=lambda r: r.created_at, reverse=True)
    return finished[keep:]


def threads_beyond(threads: Sequence[ThreadRecord], retention: Retention,
                   now: float) -> list[str]:
    """The ids of the idle threads to forget: expired ones, then the least recently changed
    beyond `max_threads`."""
    idle = sorted((t for t in threads if t.active_run is None), key=lambda t: t.updated_at)
    ttl = retention.thread_ttl
    expired = [t for t in idle if ttl is not None and now - t.updated_at > ttl]
    kept = [t for t in idle if not (ttl is not None and now - t.updated_at > ttl)]
    excess = len(threads) - len(expired) - (retention.max_threads or len(threads))
    return [t.thread_id for t in expired + kept[:max(0, excess)]]

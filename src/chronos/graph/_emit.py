"""`emit()`: send a custom event from inside a running node into the run's stream.

The run loop installs an `Emitter` (the run's event hub and the running node) in a context
variable for the duration of a run and of each node; only the graph sets it. Context variables
follow `asyncio` tasks and `asyncio.to_thread`, so a sync node running in a worker thread
reaches the same hub, which is thread-safe (`EventHub.sink`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chronos.graph._events import CURRENT_NODE

__all__ = ["EventSink", "current_sink", "emit"]

EventSink = Callable[[str, Any], None]


def emit(type: str, data: Any = None) -> None:
    """Send a custom event into the stream of the run this code is executing in.

    ```python
    def extract(state):
        graph.emit("progress", {"done": 3, "of": 10})
        ...
    ```

    It never loses the event. From a node on the run's event loop it returns at once; from a
    sync node in a worker thread it may wait while a reader of the run is far behind (the
    hub decides: see `chronos.graph.Runner.stream`).

    Raises:
        EmitOutsideRunError: called outside a running node, where no stream would receive it.
    """
    # Outside a run the context's default `Emitter` raises, so `emit` itself tests nothing:
    # it is on every token's path.
    CURRENT_NODE.get()(type, data)


def current_sink() -> EventSink:
    """What `emit()` calls in this context: a loop emitting many events can call it directly,
    sparing each event `emit`'s call and context-variable lookup. Outside a run it raises
    `EmitOutsideRunError` when called, as `emit()` would."""
    return CURRENT_NODE.get()

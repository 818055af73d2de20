"""`emit()`: send a custom event from inside a running node into the run's stream.

The run loop installs its event hub's sink in a context variable for the duration of a run;
only the graph sets and reads it. Context variables follow `asyncio` tasks and
`asyncio.to_thread`, so a sync node running in a worker thread reaches the same sink, which
is thread-safe (`EventHub.sink`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from chronos.errors import EmitOutsideRunError

__all__ = ["EventSink", "current_sink", "emit", "event_sink"]

EventSink = Callable[[str, Any], None]


def _outside_run(type: str, data: Any) -> None:
    raise EmitOutsideRunError(f"emit({type!r}) called outside a running node")


# The default sink raises, so `emit` itself tests nothing: it is on every token's path.
_current_sink: ContextVar[EventSink] = ContextVar("chronos_event_sink", default=_outside_run)


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
    _current_sink.get()(type, data)


def current_sink() -> EventSink:
    """What `emit()` calls in this context: a loop emitting many events can call it directly,
    sparing each event `emit`'s call and context-variable lookup. Outside a run it raises
    `EmitOutsideRunError` when called, as `emit()` would."""
    return _current_sink.get()


@contextlib.contextmanager
def event_sink(sink: EventSink) -> Iterator[None]:
    """Route `emit()` calls in this context, and tasks or threads started from it, to `sink`."""
    token = _current_sink.set(sink)
    try:
        yield
    finally:
        _current_sink.reset(token)

"""`emit()`: send a custom event from inside a running node into the run's stream.

The run loop installs an `Emitter` (the run's event hub and the running node) in a context
variable for the duration of a run and of each node; only the graph sets it. Context variables
follow `asyncio` tasks and `asyncio.to_thread`, so a sync node running in a worker thread
reaches the same hub, which is thread-safe (`EventHub.sink`).

`emit` itself is defined beside the `Emitter` in the compiled `_events` module: a compiled
`emit` calls the node's `Emitter` natively, without a Python frame of its own or the
arguments parsed a second time, 18% of a custom event's instructions (BENCHMARKS.md). The
price: mypyc keeps a compiled function's signature but not its docstring, so `help(emit)`
shows the signature alone in the compiled build (the README documents `emit`).
"""

from __future__ import annotations

from chronos.graph._events import CURRENT_NODE, Emitter, emit

__all__ = ["current_sink", "emit"]


def current_sink() -> Emitter:
    """What `emit()` calls in this context: a loop emitting many events can call it directly,
    sparing each event `emit`'s call and context-variable lookup, and ask it whether anyone
    takes an event before building it (`Emitter.skip`). Outside a run it raises
    `EmitOutsideRunError` when called, as `emit()` would."""
    return CURRENT_NODE.get()

"""State graphs whose runs stream their execution and checkpoint after every step.

```python
from chronos import graph

g = graph.StateGraph("qa")
g.add_node("answer", answer).set_entry_point("answer").set_finish_point("answer")
runner = graph.Runner(g.compile())
result = await runner.run("session-1", {"query": "hi"})
```

Inside a node, `graph.interrupt(question)` pauses the run until `runner.resume(session,
resume=answer)`, and returning `graph.Command(update=..., goto=...)` or `graph.Send(node,
input)` chooses what runs next. `await graph.stream_chat(provider, req)` streams a model's
response into the run as `token` events (and so to the runner's broker) and returns the
whole response.

A server writing state as a node would (`update_state(as_node=...)`) steps the graph with the
planner's pure functions: `apply_updates` (reducers), `entry_nodes` / `next_nodes` (where the
edges lead), `node_ids` and `interrupts_in`.
"""

from __future__ import annotations

from chronos.graph._builder import Branch, CompiledGraph, NodeSpec, StateGraph
from chronos.graph._command import Command, Send
from chronos.graph._emit import emit
from chronos.graph._events import EventStream, StreamEvent, event_payload
from chronos.graph._interrupt import Interrupt, interrupt
from chronos.graph._model_tokens import MessageDelta, stream_chat, stream_chat_sync
from chronos.graph._plan import apply_updates, entry_nodes, interrupts_in, next_nodes, node_ids
from chronos.graph._reducers import append, merge, replace
from chronos.graph._retry import RetryPolicy
from chronos.graph._run import RunState, RunStatus
from chronos.graph._runner import Runner
from chronos.graph._types import (
    END,
    START,
    Durability,
    NodeFunction,
    Reducer,
    Router,
    State,
    StreamMode,
    Update,
)
from chronos.graph._usage import UsageLedger

__all__ = [
    "END",
    "START",
    "Branch",
    "Command",
    "CompiledGraph",
    "Durability",
    "EventStream",
    "Interrupt",
    "MessageDelta",
    "NodeFunction",
    "NodeSpec",
    "Reducer",
    "RetryPolicy",
    "Router",
    "RunState",
    "RunStatus",
    "Runner",
    "Send",
    "State",
    "StateGraph",
    "StreamEvent",
    "StreamMode",
    "Update",
    "UsageLedger",
    "append",
    "apply_updates",
    "emit",
    "entry_nodes",
    "event_payload",
    "interrupt",
    "interrupts_in",
    "merge",
    "next_nodes",
    "node_ids",
    "replace",
    "stream_chat",
    "stream_chat_sync",
]

# Reprs, docs and pickles name the public path (`chronos.graph.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

"""A live demo: watch an agent graph run, its model's tokens streaming into a browser.

```
chronos demo                       # http://127.0.0.1:8000/, the local model
```

```python
from chronos import demo
from chronos.model.llamacpp import LlamaCppProvider

app = demo.create_app(LlamaCppProvider())      # any ASGI server: uvicorn.run(app)
```

The graph (`build_graph`): classify -> draft (streams the model's answer) -> review (pauses
for a human) -> finalize; a rejected first draft is written once more. The app's endpoints:

- `GET /`: the page (one HTML file, no external resources): a text box, the graph drawn
  with the current node highlighted, the answer as its tokens arrive, the event log, and
  Approve / Reject buttons while the run waits at review. `/?session=ID` follows a run that
  another tab started.
- `GET /graph`: the graph's nodes and edges, for drawing (`graph_layout`).
- `POST /runs` `{"prompt": "..."}`: starts a run; 201 `{"session_id", "prompt", "status"}`.
- `GET /runs/{session_id}`: the run's prompt and status ("running", "paused",
  "completed", "failed", "cancelled"); 404 for an unknown session.
- `POST /runs/{session_id}/resume` `{"approved": true | false}`: continues a run paused
  at review; 202, 404 for an unknown session, 409 for a run that is not paused.
- `GET /runs/{session_id}/events`: the run's events as Server-Sent Events, the JSON of each
  event (`{"id", "type", "topic", "data"}`) in `data:`. With `Last-Event-ID` (or
  `?last_event_id=`) the stream resumes after that event; without, it starts at the
  session's first event, so a late tab sees the whole run.
"""

from __future__ import annotations

from chronos.demo._app import DemoApp, create_app
from chronos.demo._graph import GRAPH_ID, build_graph, graph_layout
from chronos.demo._serve import bind, serve

__all__ = ["GRAPH_ID", "DemoApp", "bind", "build_graph", "create_app", "graph_layout", "serve"]

# Reprs, docs and pickles name the public path (`chronos.demo.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

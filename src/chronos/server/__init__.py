"""Graphs served over HTTP through the LangGraph Agent Server API.

```python
from chronos import server
app = server.create_app({"agent": g})     # any ASGI server; or `chronos serve mod:g`
```

The official SDKs (`langgraph-sdk`, `@langchain/langgraph-sdk`) talk to it unchanged; so do
OpenAI, AG-UI and AI SDK clients, through the routes of `chronos.server.dialects`.
"""

from chronos.server import dialects
from chronos.server._app import AgentServerApp, create_app
from chronos.server._body import MAX_BODY_BYTES, read_body, read_json_object
from chronos.server._errors import exception_handlers
from chronos.server._record_limits import Retention
from chronos.server._records import (
    MemoryRecords,
    Records,
    RedisRecords,
    records_for,
    shares_records,
)
from chronos.server._serve import bind, serve
from chronos.server._threads import Action, Authorize, ThreadRecord

__all__ = [
    "MAX_BODY_BYTES",
    "Action",
    "AgentServerApp",
    "Authorize",
    "MemoryRecords",
    "Records",
    "RedisRecords",
    "Retention",
    "ThreadRecord",
    "bind",
    "create_app",
    "dialects",
    "exception_handlers",
    "read_body",
    "read_json_object",
    "records_for",
    "serve",
    "shares_records",
]

# Reprs, docs and pickles name the public path (`chronos.server.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

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
from chronos.server._serve import bind, serve
from chronos.server._threads import Action, Authorize, ThreadRecord

__all__ = ["MAX_BODY_BYTES", "Action", "AgentServerApp", "Authorize", "ThreadRecord", "bind",
           "create_app", "dialects", "read_body", "read_json_object", "serve"]

for _obj in (AgentServerApp, ThreadRecord, bind, create_app, read_body, read_json_object, serve):
    _obj.__module__ = __name__

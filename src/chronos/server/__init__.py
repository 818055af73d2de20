"""Graphs served over HTTP through the LangGraph Agent Server API.

```python
from chronos import server
app = server.create_app({"agent": g})     # any ASGI server; or `chronos serve mod:g`
```

The official SDKs (`langgraph-sdk`, `@langchain/langgraph-sdk`) talk to it unchanged.
"""

from chronos.server._app import create_app
from chronos.server._body import MAX_BODY_BYTES, read_body, read_json_object

__all__ = ["MAX_BODY_BYTES", "create_app", "read_body", "read_json_object"]

"""Token streaming from LLM providers.

```python
from chronos import model

req = model.ChatRequest(messages=[model.Message(role="user", content="Tell me a story")])
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="", flush=True)
```
"""

from chronos.model._types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    Role,
    StopReason,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "ImagePart",
    "Message",
    "Role",
    "StopReason",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
]

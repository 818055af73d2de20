"""Token streaming from LLM providers.

```python
from chronos import model
from chronos.model.openai import OpenAIProvider

provider = OpenAIProvider("gpt-4o-mini")
req = model.ChatRequest(messages=[model.Message(role="user", content="Tell me a story")])
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="", flush=True)
```

Every provider follows the `Provider` protocol; `accumulate` turns a stream into the whole
`ChatResponse`. Vendor modules: `chronos.model.openai` (OpenAI, every OpenAI-compatible
server, Azure OpenAI), `chronos.model.openai_responses` (the Responses API),
`chronos.model.anthropic` (Messages API), `chronos.model.gemini` (Google Gemini),
`chronos.model.ollama` (Ollama's native API), `chronos.model.cohere` (Cohere v2 chat),
`chronos.model.llamacpp` (a GGUF model run in this process by llama.cpp), and
`chronos.model.fallback` (the next provider when one fails before answering).

A new HTTP vendor subclasses `HTTPProvider` and writes a `StreamTranslator` that turns each
decoded `SSEEvent` (or NDJSON / JSON-array item) into chunks through a `ChunkBuilder`; its
`_build_request` returns a `VendorRequest` (see `chronos.model._provider` for a whole one).
"""

from chronos.model import (
    anthropic,
    cohere,
    fallback,
    gemini,
    llamacpp,
    ollama,
    openai,
    openai_responses,
)
from chronos.model._assemble import ChunkBuilder, StreamAccumulator, accumulate
from chronos.model._decode import JSONArrayDecoder, NDJSONDecoder, SSEDecoder, SSEEvent
from chronos.model._prices import Price, Prices, Pricing, genai_prices
from chronos.model._protocol import BaseProvider
from chronos.model._provider import (
    ChatStream,
    Decoder,
    HTTPProvider,
    Provider,
    RetryPolicy,
    StreamTranslator,
    VendorRequest,
)
from chronos.model._registry import (
    available_providers,
    provider_from_name,
    provider_name_from_environment,
)
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
from chronos.model.anthropic import AnthropicProvider
from chronos.model.cohere import CohereProvider
from chronos.model.fallback import FallbackProvider
from chronos.model.gemini import GeminiProvider
from chronos.model.ollama import OllamaProvider
from chronos.model.openai import AzureOpenAIProvider, OpenAIProvider
from chronos.model.openai_responses import OpenAIResponsesProvider

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "BaseProvider",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ChunkBuilder",
    "CohereProvider",
    "ContentPart",
    "Decoder",
    "FallbackProvider",
    "GeminiProvider",
    "HTTPProvider",
    "ImagePart",
    "JSONArrayDecoder",
    "Message",
    "NDJSONDecoder",
    "OllamaProvider",
    "OpenAIProvider",
    "OpenAIResponsesProvider",
    "Price",
    "Prices",
    "Pricing",
    "Provider",
    "RetryPolicy",
    "Role",
    "SSEDecoder",
    "SSEEvent",
    "StopReason",
    "StreamAccumulator",
    "StreamTranslator",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
    "VendorRequest",
    "accumulate",
    "anthropic",
    "available_providers",
    "cohere",
    "fallback",
    "gemini",
    "genai_prices",
    "llamacpp",
    "ollama",
    "openai",
    "openai_responses",
    "provider_from_name",
    "provider_name_from_environment",
]

# Reprs, docs and pickles name the public path (`chronos.model.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

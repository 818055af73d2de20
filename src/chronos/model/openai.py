"""OpenAI Chat Completions, every OpenAI-compatible server, and Azure OpenAI.

```python
from chronos.model.openai import OpenAIProvider

provider = OpenAIProvider("gpt-4o-mini")                       # key from OPENAI_API_KEY
groq = OpenAIProvider("llama-3.1-8b-instant", base_url="https://api.groq.com/openai/v1",
                      api_key=os.environ["GROQ_API_KEY"])
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

Through `base_url` this speaks to Mistral, Groq, DeepSeek, OpenRouter, Perplexity, xAI, vLLM,
llama.cpp's server and Ollama's `/v1`. Their differences are absorbed here: usage in a final
chunk with empty `choices`, on the last choice chunk, or in Groq's `x_groq.usage`; an error
object inside a chunk or an `event: error`; reasoning as `reasoning_content` or `reasoning`,
or Mistral's `thinking` content parts; Perplexity's final `chat.completion.done` chunk
(deltas are used, never the repeated full `message`); tool-call `id`/`name` repeated on every
fragment (OpenRouter); no `[DONE]` after a finish reason (Perplexity).

A `refusal` (the model declining, e.g. under structured outputs) arrives in
`chunk.refusal`, never in `content`, and the response ends with `StopReason.CONTENT_FILTER`.

Only the first choice (`index` 0) is streamed: `ChatRequest` has no `n`, and choices with
another index, which a server sends only when asked for several (`n > 1`, e.g. through a
proxy that adds it), are ignored rather than mixed into the first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Final

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._openai_translate import ChatCompletionsEvents
from chronos.model._provider import HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
)

__all__ = ["AzureOpenAIProvider", "OpenAIProvider"]

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"


class _ChatCompletionsStream(StreamTranslator):
    """One Chat Completions stream: `data: {chunk}` events, then `data: [DONE]`.

    The per-event work is compiled (`_openai_translate`); this class is the subclassable
    translator around it. A subclass that changes `on_event` overrides `translate` and
    `_chunks` too: the provider runs `_chunks(out)` on each read's events.
    """

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        _EVENTS.on_event(self, event, out)

    def translate(self, event: SSEEvent, out: ChunkBuilder) -> None:
        _EVENTS.translate(self, event, out)

    def _chunks(self, out: ChunkBuilder) -> Callable[[list[SSEEvent]], Iterator[ChatResponse]]:
        return partial(_EVENTS.chunks, self, out)


_EVENTS: Final = ChatCompletionsEvents()  # it keeps no state: one serves every stream


def chat_content(content: str | Sequence[ContentPart]) -> str | list[dict[str, Any]]:
    """Message content in the Chat Completions shape (text, or text and image_url parts)."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            url = part.url or f"data:{part.media_type};base64,{part.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": chat_content(message.content)}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        if not message.content:
            out["content"] = None
    return out


def chat_completions_body(
    req: ChatRequest, model: str, *, stream_usage: bool, max_tokens_field: str
) -> dict[str, Any]:
    """The streaming Chat Completions request body for `req` (also what llama.cpp reads)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in req.messages],
        "stream": True,
    }
    if stream_usage:
        body["stream_options"] = {"include_usage": True}
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    for name in ("temperature", "top_p", "seed", "response_format"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.stop:
        body["stop"] = list(req.stop)
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in req.tools
        ]
    return body


class OpenAIProvider(HTTPProvider):
    """OpenAI Chat Completions, or any OpenAI-compatible server through `base_url`.

    ```python
    provider = OpenAIProvider("gpt-4o-mini")
    local = OpenAIProvider("qwen2.5", base_url="http://localhost:11434/v1", api_key="ollama")
    ```

    The key comes from `OPENAI_API_KEY` unless given. `stream_usage=False` stops asking for
    the usage chunk (`stream_options`), for servers that reject the option.
    """

    name = "openai"
    default_base_url = OPENAI_BASE_URL
    api_key_env = ("OPENAI_API_KEY",)

    def __init__(
        self, model: str = "gpt-4o-mini", *, stream_usage: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.stream_usage = stream_usage

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        # OpenAI's reasoning models accept only the new name; compatible servers the old.
        field = "max_completion_tokens" if self.base_url == OPENAI_BASE_URL else "max_tokens"
        return chat_completions_body(
            req, req.model or self.model, stream_usage=self.stream_usage, max_tokens_field=field
        )

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        return VendorRequest(path="/chat/completions", json=self._body(req))

    def _new_translator(self) -> StreamTranslator:
        return _ChatCompletionsStream(self.name, self.model)


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: a deployment URL, an `api-version` query and the `api-key` header.

    ```python
    provider = AzureOpenAIProvider("my-gpt4o", endpoint="https://res.openai.azure.com")
    ```

    The key comes from `AZURE_OPENAI_API_KEY`, the endpoint from `AZURE_OPENAI_ENDPOINT`.
    Without a deployment, `base_url` is used as is (Azure AI Foundry's `.../models`).
    """

    name = "azure_openai"
    default_base_url = ""
    api_key_env = ("AZURE_OPENAI_API_KEY",)

    def __init__(
        self,
        deployment: str | None = None,
        *,
        endpoint: str | None = None,
        api_version: str = "2024-10-21",
        base_url: str | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if deployment and endpoint:
            base_url = f"{endpoint.rstrip('/')}/openai/deployments/{deployment}"
        super().__init__(model or deployment or "", base_url=base_url or endpoint, **kwargs)
        self.deployment = deployment
        self.api_version = api_version

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key}

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        body = self._body(req)
        if self.deployment and not req.model:
            body.pop("model")  # the deployment names the model
        return VendorRequest(
            path="/chat/completions", json=body, params={"api-version": self.api_version}
        )

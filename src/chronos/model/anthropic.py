"""Anthropic Messages API (`POST /v1/messages`, streamed).

```python
from chronos.model.anthropic import AnthropicProvider

provider = AnthropicProvider("claude-sonnet-4-5")           # key from ANTHROPIC_API_KEY
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

The stream is `event:` + `data:` pairs: `message_start` (id, model, input usage), then per
content block `content_block_start` / `_delta` / `_stop`, then `message_delta` (stop reason,
final usage) and `message_stop`. Text deltas become `content`, thinking deltas `reasoning`;
signatures, citations and redacted thinking are not text and are skipped. A `tool_use` block
streams its input as `input_json_delta` fragments (a single `""` for a call without
arguments) and is complete at its `content_block_stop`. Server tool blocks (web search, code
execution, MCP, tool search...) run on Anthropic's side: they are not tool calls for the
caller and are skipped. `ping` is a keep-alive; `event: error` raises `ProviderStreamError`
with the error's type as `code`. An `overloaded_error`, `rate_limit_error` or `api_error`
event before the first chunk is retried like a 529, 429 or 500 before the stream (the
caller has seen nothing); after it, it is raised, as the text would be generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Final

from chronos.model._anthropic_translate import MessagesEvents
from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._provider import HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
)

__all__ = ["AnthropicProvider"]

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096

class _MessagesStream(StreamTranslator):
    """One Messages stream. The per-event work and the stream's state are compiled
    (`_anthropic_translate.MessagesEvents`); this class is the subclassable translator."""

    # Error events that mean "try again" (Anthropic's 529, 429 and 500 types).
    retryable_codes = frozenset({"overloaded_error", "rate_limit_error", "api_error"})

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._events = MessagesEvents()

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        self._events.on_event(self, event, out)

    def translate(self, event: SSEEvent, out: ChunkBuilder) -> None:
        self._events.translate(self, event, out)

    def _chunks(self, out: ChunkBuilder) -> Callable[[list[SSEEvent]], Iterator[ChatResponse]]:
        return partial(self._events.chunks, self, out)


def _content(content: str | Sequence[ContentPart]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            source: dict[str, Any] = (
                {"type": "url", "url": part.url} if part.url
                else {"type": "base64", "media_type": part.media_type, "data": part.data}
            )
            blocks.append({"type": "image", "source": source})
    return blocks


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    """The role and content blocks of one chronos message in Messages API terms."""
    if message.role == "tool":
        content = message.content
        return "user", [{"type": "tool_result", "tool_use_id": message.tool_call_id,
                         "content": content if isinstance(content, str) else _content(content)}]
    blocks = _content(message.content)
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": call.parsed_arguments()})
    return message.role, blocks


def _messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages): system messages are a separate field in this API."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.text)
            continue
        role, blocks = _blocks(message)
        if out and out[-1]["role"] == role:
            # The API wants user and assistant turns to alternate: parallel tool results
            # (several `tool` messages) go back as one user turn.
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(system), out


class AnthropicProvider(HTTPProvider):
    """Anthropic's Messages API, streamed.

    ```python
    provider = AnthropicProvider("claude-sonnet-4-5")
    response = await provider.chat(req)
    ```

    The key comes from `ANTHROPIC_API_KEY` unless given. System messages are sent as the
    `system` field; `tool` messages as `tool_result` blocks of a user turn. The API requires
    `max_tokens`: `default_max_tokens` is used when the request sets none (it must exceed
    `thinking_budget`, which turns on extended thinking, streamed as `chunk.reasoning`).
    `betas` turns on
    beta features (the `anthropic-beta` header, with `?beta=true` as the official SDK sends).
    Of `metadata`, only `user_id` is sent (the one key the API accepts); `response_format`
    and `seed` are not supported by the API and are ignored.
    """

    name = "anthropic"
    default_base_url = "https://api.anthropic.com/v1"
    api_key_env = ("ANTHROPIC_API_KEY",)

    def __init__(
        self,
        model: str = "claude-sonnet-4-5",
        *,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        thinking_budget: int | None = None,
        betas: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.default_max_tokens = default_max_tokens
        self.thinking_budget = thinking_budget
        self.betas = tuple(betas)

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        system, messages = _messages(req.messages)
        body: dict[str, Any] = {
            "model": req.model or self.model,
            "messages": messages,
            "max_tokens": req.max_tokens if req.max_tokens is not None else self.default_max_tokens,
            "stream": True,
        }
        if system:
            body["system"] = system
        for name in ("temperature", "top_p"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.stop:
            body["stop_sequences"] = list(req.stop)
        if self.thinking_budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        if req.metadata.get("user_id"):
            body["metadata"] = {"user_id": req.metadata["user_id"]}
        if req.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description,
                 "input_schema": dict(t.parameters)}
                for t in req.tools
            ]
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        params: dict[str, str] = {}
        if self.betas:
            headers["anthropic-beta"] = ",".join(self.betas)
            params["beta"] = "true"
        return VendorRequest(path="/messages", json=body, headers=headers, params=params)

    def _new_translator(self) -> StreamTranslator:
        return _MessagesStream(self.name, self.model)

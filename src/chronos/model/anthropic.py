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
caller and are skipped. `ping` is a keep-alive; `event: error` raises `ProviderStreamError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._provider import HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    StopReason,
    TextPart,
    Usage,
)

__all__ = ["AnthropicProvider"]

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "end_turn": StopReason.END,
    "stop_sequence": StopReason.END,
    "tool_use": StopReason.TOOL_CALL,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "refusal": StopReason.CONTENT_FILTER,
    "pause_turn": StopReason.OTHER,  # a server tool loop paused; send the turn back to resume
}


def _usage(raw: Mapping[str, Any]) -> Usage:
    # Cached prompt tokens are billed apart but are input all the same (as OpenAI counts them).
    input_tokens = None
    if raw.get("input_tokens") is not None:
        input_tokens = (
            raw["input_tokens"]
            + (raw.get("cache_creation_input_tokens") or 0)
            + (raw.get("cache_read_input_tokens") or 0)
        )
    output_tokens = raw.get("output_tokens")
    total = None
    if input_tokens is not None and output_tokens is not None:
        total = input_tokens + output_tokens
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total,
                 raw=raw,
                 reasoning_tokens=(raw.get("output_tokens_details") or {}).get("thinking_tokens"),
                 cached_tokens=raw.get("cache_read_input_tokens"),
                 cache_write_tokens=raw.get("cache_creation_input_tokens"))


class _MessagesStream(StreamTranslator):
    """One Messages stream; content blocks are keyed by their `index`."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._usage: dict[str, Any] = {}
        # index -> the input the block started with, for client tool_use blocks only.
        self._tools: dict[int | None, Any] = {}
        self._streamed: set[int | None] = set()

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        data = self.loads(event.data)
        if not isinstance(data, dict):
            raise self.stream_error(f"unexpected event {event.data[:200]!r}")
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":  # most events: no call for them
                out.text(delta.get("text") or "")
            else:
                self._delta(data.get("index"), delta, out)
        elif kind == "content_block_start":
            self._start(data.get("index"), data.get("content_block") or {}, out)
        elif kind == "content_block_stop":
            self._stop(data.get("index"), out)
        elif kind == "message_start":
            message = data.get("message") or {}
            out.id = message.get("id") or out.id
            out.model = message.get("model") or out.model
            self._add_usage(message.get("usage"), out)
        elif kind == "message_delta":
            self._add_usage(data.get("usage"), out)
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                out.stop(reason, STOP_REASONS.get(reason, StopReason.OTHER))
        elif kind == "message_stop":
            out.end_stream()
        elif kind == "error":
            error = data["error"] if isinstance(data.get("error"), dict) else data
            raise self.stream_error(str(error.get("message") or error), code=error.get("type"))
        # "ping" and event types added later are skipped.

    def _start(self, index: int | None, block: Mapping[str, Any], out: ChunkBuilder) -> None:
        kind = block.get("type")
        if kind == "text":
            out.text(block.get("text") or "")
        elif kind == "thinking":
            out.reasoning(block.get("thinking") or "")
        elif kind == "tool_use":
            self._tools[index] = block.get("input")
            out.tool_fragment(index, id=block.get("id"), name=block.get("name"))

    def _delta(self, index: int | None, delta: Mapping[str, Any], out: ChunkBuilder) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            out.text(delta.get("text") or "")
        elif kind == "thinking_delta":
            out.reasoning(delta.get("thinking") or "")
        elif kind == "input_json_delta" and index in self._tools:
            # Fragments of server tool blocks (web_search...) arrive too; those are skipped.
            fragment = delta.get("partial_json")
            if fragment:
                self._streamed.add(index)
            out.tool_fragment(index, arguments=fragment)
        # signature_delta, citations_delta: metadata of text already delivered.

    def _stop(self, index: int | None, out: ChunkBuilder) -> None:
        if index not in self._tools:
            return
        start_input = self._tools.pop(index)
        if index not in self._streamed and start_input:
            # Some gateways put the whole input in the start block and stream no deltas.
            out.tool_fragment(index, arguments=orjson.dumps(start_input).decode())
        out.complete_tool(index)

    def _add_usage(self, usage: Any, out: ChunkBuilder) -> None:
        # message_delta carries the final counts; fields it leaves out keep their start value.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            out.usage(_usage(dict(self._usage)))


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

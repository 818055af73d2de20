"""Cohere's v2 Chat API (`POST /v2/chat`, streamed).

```python
from chronos.model.cohere import CohereProvider

provider = CohereProvider("command-a-03-2025")               # key from COHERE_API_KEY
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

The stream is SSE with hyphenated event types: `message-start`, `content-start` /
`content-delta` / `content-end` (text, or `thinking` for reasoning models), `tool-plan-delta`
(the model's plan before calling tools, reported as reasoning), `tool-call-start` (id and
name) / `tool-call-delta` (argument fragments) / `tool-call-end`, `citation-start` /
`citation-end` (skipped), and `message-end` with the finish reason and usage; then a final
`data: [DONE]` without an event name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._provider import HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    Message,
    StopReason,
    Usage,
)
from chronos.model.openai import chat_content

__all__ = ["CohereProvider"]

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "COMPLETE": StopReason.END,
    "STOP_SEQUENCE": StopReason.END,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "TOOL_CALL": StopReason.TOOL_CALL,
    "ERROR_TOXIC": StopReason.CONTENT_FILTER,
}


def _usage(raw: Mapping[str, Any]) -> Usage:
    # `tokens` counts what the model saw and wrote; `billed_units` only what is billed.
    tokens = raw.get("tokens") or raw.get("billed_units") or {}
    prompt = tokens.get("input_tokens")
    output = tokens.get("output_tokens")
    total = prompt + output if prompt is not None and output is not None else None
    return Usage(input_tokens=prompt, output_tokens=output, total_tokens=total, raw=raw,
                 reasoning_tokens=(raw.get("tokens") or {}).get("reasoning_tokens"),
                 cached_tokens=raw.get("cached_tokens"))


class _ChatStream(StreamTranslator):
    """One v2 chat stream; content blocks and tool calls are keyed by `index`."""

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        if event.data == "[DONE]":
            out.end_stream()
            return
        data = self.loads(event.data)
        if not isinstance(data, dict):
            raise self.stream_error(f"unexpected event {event.data[:200]!r}")
        kind = data.get("type") or event.event
        message = (data.get("delta") or {}).get("message") or {}
        if kind in ("content-delta", "content-start"):
            content = message.get("content") or {}
            if content.get("text"):
                out.text(content["text"])
            if content.get("thinking"):
                out.reasoning(content["thinking"])
        elif kind == "tool-plan-delta":
            out.reasoning(message.get("tool_plan") or "")
        elif kind in ("tool-call-start", "tool-call-delta"):
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            out.tool_fragment(data.get("index"), id=call.get("id"), name=function.get("name"),
                              arguments=function.get("arguments"))
        elif kind == "tool-call-end":
            out.complete_tool(data.get("index"))
        elif kind == "message-start":
            out.id = data.get("id") or out.id
        elif kind == "message-end":
            delta = data.get("delta") or {}
            if delta.get("usage"):
                out.usage(_usage(delta["usage"]))
            if delta.get("error"):
                raise self.stream_error(str(delta["error"]))
            reason = delta.get("finish_reason")
            if reason:
                out.stop(reason, STOP_REASONS.get(reason, StopReason.OTHER))
            out.allow_end()
        elif kind == "error" or (kind is None and data.get("message")):
            raise self.stream_error(str(data.get("message") or data))
        # citation-start / citation-end and later additions are skipped.


def _response_format(fmt: Mapping[str, Any]) -> dict[str, Any]:
    # OpenAI's {"type": "json_schema", "json_schema": {"schema": S}} is Cohere's
    # {"type": "json_object", "json_schema": S}.
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema else {})}
    return dict(fmt)


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        out["content"] = message.text
        return out
    if message.content or not message.tool_calls:
        out["content"] = chat_content(message.content)  # Cohere v2 takes OpenAI's shape
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


class CohereProvider(HTTPProvider):
    """Cohere's v2 Chat API, streamed.

    ```python
    provider = CohereProvider("command-a-03-2025")
    response = await provider.chat(req)
    ```

    The key comes from `COHERE_API_KEY` or `CO_API_KEY` unless given. `response_format`
    takes Cohere's form (`{"type": "json_object", "json_schema": ...}`) or OpenAI's
    `json_schema` form, which is converted.
    """

    name = "cohere"
    default_base_url = "https://api.cohere.com/v2"
    api_key_env = ("COHERE_API_KEY", "CO_API_KEY")

    def __init__(self, model: str = "command-a-03-2025", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        body: dict[str, Any] = {
            "model": req.model or self.model,
            "messages": [_message(m) for m in req.messages],
            "stream": True,
        }
        for field, value in (("max_tokens", req.max_tokens), ("temperature", req.temperature),
                             ("p", req.top_p), ("seed", req.seed)):
            if value is not None:
                body[field] = value
        if req.stop:
            body["stop_sequences"] = list(req.stop)
        if req.response_format is not None:
            body["response_format"] = _response_format(req.response_format)
        if req.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": dict(t.parameters)}}
                for t in req.tools
            ]
        return VendorRequest(path="/chat", json=body)

    def _new_translator(self) -> StreamTranslator:
        return _ChatStream(self.name, self.model)

"""The OpenAI Responses API (`POST /responses`), also as served by xAI, DeepSeek, Azure,
Bedrock and OpenRouter.

```python
from chronos.model.openai_responses import OpenAIResponsesProvider

provider = OpenAIResponsesProvider("gpt-4o-mini")            # key from OPENAI_API_KEY
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

The stream is typed events with a `sequence_number`. A function call's `call_id` and `name`
arrive only in `response.output_item.added`; its argument deltas are keyed by `item_id`; and
`response.output_item.done` says it is complete. The stream ends with `response.completed`
(or `.incomplete` / `.failed`); OpenRouter adds `data: [DONE]`. Built-in tools (web search,
file search, ...) are not function calls and are not reported as tool calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

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
from chronos.model.openai import OPENAI_BASE_URL

__all__ = ["OpenAIResponsesProvider"]

_INCOMPLETE: Final[Mapping[str, StopReason]] = {
    "max_output_tokens": StopReason.MAX_TOKENS,
    "content_filter": StopReason.CONTENT_FILTER,
}
_REASONING_DELTAS: Final = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)


class _ResponsesStream(StreamTranslator):
    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._streamed_arguments: set[str] = set()
        self._made_calls = False

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        if event.data == "[DONE]":
            out.end_stream()
            return
        data = self.loads(event.data)
        kind = data.get("type") or event.event
        if kind == "response.output_text.delta":
            out.text(data.get("delta") or "")
        elif kind in _REASONING_DELTAS:
            out.reasoning(data.get("delta") or "")
        elif kind == "response.refusal.delta":
            out.refusal(data.get("delta") or "")
        elif kind == "response.function_call_arguments.delta":
            item_id = data.get("item_id")
            self._streamed_arguments.add(item_id)
            out.tool_fragment(item_id, arguments=data.get("delta"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item(kind, data.get("item") or {}, out)
        elif kind in ("response.created", "response.in_progress"):
            self._meta(data.get("response") or {}, out)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final(kind, data.get("response") or {}, out)
        elif kind == "error":
            error = data.get("error") if isinstance(data.get("error"), dict) else data
            raise self.stream_error(str(error.get("message") or error), code=error.get("code"))

    def _item(self, kind: str, item: Mapping[str, Any], out: ChunkBuilder) -> None:
        if item.get("type") != "function_call":
            return
        item_id = item.get("id") or item.get("call_id")
        if kind == "response.output_item.added":
            self._made_calls = True
            out.tool_fragment(item_id, id=item.get("call_id"), name=item.get("name"))
            return
        if item_id not in self._streamed_arguments:
            # No argument deltas were streamed: the finished item holds them whole.
            out.tool_fragment(
                item_id, id=item.get("call_id"), name=item.get("name"),
                arguments=item.get("arguments"),
            )
        out.complete_tool(item_id)

    @staticmethod
    def _meta(response: Mapping[str, Any], out: ChunkBuilder) -> None:
        if response.get("id"):
            out.id = response["id"]
        if response.get("model"):
            out.model = response["model"]

    def _final(self, kind: str, response: Mapping[str, Any], out: ChunkBuilder) -> None:
        self._meta(response, out)
        if kind == "response.failed":
            error = response.get("error") or {}
            raise self.stream_error(str(error.get("message") or error), code=error.get("code"))
        usage = response.get("usage")
        if usage:
            out.usage(
                Usage(
                    input_tokens=usage.get("input_tokens"),
                    output_tokens=usage.get("output_tokens"),
                    total_tokens=usage.get("total_tokens"),
                    raw=usage,
                )
            )
        status = response.get("status") or "completed"
        if kind == "response.incomplete" or status == "incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason") or ""
            out.stop(f"incomplete:{reason}", _INCOMPLETE.get(reason, StopReason.OTHER))
        else:
            out.stop(status, StopReason.TOOL_CALL if self._made_calls else StopReason.END)
        out.end_stream()


def _content(content: str | Sequence[ContentPart], role: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": text_type, "text": part.text})
        elif isinstance(part, ImagePart):
            url = part.url or f"data:{part.media_type};base64,{part.data}"
            parts.append({"type": "input_image", "image_url": url})
    return parts


def _input_items(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "function_call_output", "call_id": message.tool_call_id,
                 "output": message.text}]
    items: list[dict[str, Any]] = []
    if message.content:
        items.append({"role": message.role, "content": _content(message.content, message.role)})
    for call in message.tool_calls:
        items.append({"type": "function_call", "call_id": call.id, "name": call.name,
                      "arguments": call.arguments})
    return items


class OpenAIResponsesProvider(HTTPProvider):
    """The OpenAI Responses API, or a compatible server through `base_url`.

    ```python
    provider = OpenAIResponsesProvider("gpt-4o-mini")
    grok = OpenAIResponsesProvider("grok-4", base_url="https://api.x.ai/v1",
                                   api_key=os.environ["XAI_API_KEY"])
    ```

    Requests are not stored on the server (`store: false`).
    """

    name = "openai_responses"
    default_base_url = OPENAI_BASE_URL
    api_key_env = ("OPENAI_API_KEY",)

    def __init__(self, model: str = "gpt-4o-mini", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        body: dict[str, Any] = {
            "model": req.model or self.model,
            "input": [item for m in req.messages for item in _input_items(m)],
            "stream": True,
            "store": False,
        }
        if req.max_tokens is not None:
            body["max_output_tokens"] = req.max_tokens
        for name in ("temperature", "top_p"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.response_format is not None:
            body["text"] = {"format": dict(req.response_format)}
        if req.metadata:
            body["metadata"] = dict(req.metadata)
        if req.tools:
            body["tools"] = [
                {"type": "function", "name": t.name, "description": t.description,
                 "parameters": dict(t.parameters)}
                for t in req.tools
            ]
        return VendorRequest(path="/responses", json=body)

    def _new_translator(self) -> StreamTranslator:
        return _ResponsesStream(self.name, self.model)

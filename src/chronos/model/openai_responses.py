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

In background mode (`background=True`) a stream survives a dropped connection: the provider
reconnects with `GET /responses/{id}?stream=true&starting_after=<last sequence_number>` and
the chunks go on, none repeated or missing (events at or below the last sequence number seen
are skipped should a server send them again). `resume_stream(response_id, after=n)` does the
same explicitly, e.g. from another process. Background responses are stored by OpenAI
(`store: true`, which background mode requires) and keep generating when the stream is
closed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from chronos._sync import iterate_sync
from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._protocol import ChatStream
from chronos.model._provider import HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ChatResponse,
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
    def __init__(
        self,
        provider: str,
        model: str,
        *,
        background: bool = False,
        response_id: str = "",
        after: int | None = None,
    ) -> None:
        super().__init__(provider, model)
        self.background = background
        self._streamed_arguments: set[str] = set()
        self._made_calls = False
        # Where a resumed stream continues: the response and its last event processed.
        self.response_id = response_id
        self.last_sequence = after
        self.resumes_without_progress = 0
        self.sequence_at_resume: int | None = None

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        if event.data == "[DONE]":
            out.end_stream()
            return
        data = self.loads(event.data)
        sequence = data.get("sequence_number")
        if type(sequence) is int:
            if self.last_sequence is not None and sequence <= self.last_sequence:
                return  # delivered before the connection dropped
            self.last_sequence = sequence
        if not out.id and self.response_id:
            out.id = self.response_id
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
        elif kind in ("response.created", "response.queued", "response.in_progress"):
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

    def _meta(self, response: Mapping[str, Any], out: ChunkBuilder) -> None:
        if response.get("id"):
            out.id = self.response_id = response["id"]
        if response.get("model"):
            out.model = response["model"]

    def _final(self, kind: str, response: Mapping[str, Any], out: ChunkBuilder) -> None:
        self._meta(response, out)
        if kind == "response.failed":
            error = response.get("error") or {}
            raise self.stream_error(str(error.get("message") or error), code=error.get("code"))
        usage = response.get("usage")
        if usage:
            given = usage.get("input_tokens_details") or {}
            out.usage(
                Usage(
                    input_tokens=usage.get("input_tokens"),
                    output_tokens=usage.get("output_tokens"),
                    total_tokens=usage.get("total_tokens"),
                    raw=usage,
                    reasoning_tokens=(usage.get("output_tokens_details") or {}).get(
                        "reasoning_tokens"),
                    cached_tokens=given.get("cached_tokens"),
                    cache_write_tokens=given.get("cache_write_tokens"),
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

    Requests are not stored on the server (`store: false`), except in background mode.

    Args:
        background: run the response in background mode, so that a dropped connection is
            resumed instead of failing (see the module docstring).
        max_resumes: resumes in a row that deliver no new event before the stream fails
            with the connection's error.
        **kwargs: as for every HTTP provider.
    """

    name = "openai_responses"
    default_base_url = OPENAI_BASE_URL
    api_key_env = ("OPENAI_API_KEY",)

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        background: bool = False,
        max_resumes: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.background = background
        self.max_resumes = max_resumes

    def resume_stream(self, response_id: str, *, after: int | None = None) -> ChatStream:
        """Stream a background response from the event after sequence number `after`.

        ```python
        async for chunk in provider.resume_stream("resp_123", after=41):
            print(chunk.content, end="")
        ```

        `after=None` streams it from its start. Drops are resumed as in `stream_chat`.
        """
        return ChatStream(self._read(
            lambda: self._send(lambda: self._resume_request(response_id, after)),
            lambda: _ResponsesStream(self.name, self.model, background=True,
                                     response_id=response_id, after=after),
        ))

    def resume_stream_sync(
        self, response_id: str, *, after: int | None = None
    ) -> Iterator[ChatResponse]:
        """`resume_stream` for synchronous code."""
        return iterate_sync(lambda: self.resume_stream(response_id, after=after))

    async def _resume(self, translator: StreamTranslator) -> httpx.Response | None:
        # Only a background response can be streamed again, and only once its id is known.
        if not (isinstance(translator, _ResponsesStream) and translator.background
                and translator.response_id):
            return None
        if translator.sequence_at_resume == translator.last_sequence:
            translator.resumes_without_progress += 1
        else:
            translator.resumes_without_progress = 0
        stalled = translator.resumes_without_progress
        if stalled >= self.max_resumes:
            return None
        if stalled:
            await self._sleep(min(self.retry.initial_backoff * 2 ** (stalled - 1),
                                  self.retry.max_backoff))
        translator.sequence_at_resume = translator.last_sequence
        response_id, after = translator.response_id, translator.last_sequence
        return await self._send(lambda: self._resume_request(response_id, after))

    def _resume_request(self, response_id: str, after: int | None) -> httpx.Request:
        params = {"stream": "true"}
        if after is not None:
            params["starting_after"] = str(after)
        headers = self._request_headers()
        del headers["content-type"]
        return self._client().build_request(
            "GET", f"{self.base_url}/responses/{quote(response_id, safe='')}",
            params=params, headers=headers,
        )

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        body: dict[str, Any] = {
            "model": req.model or self.model,
            "input": [item for m in req.messages for item in _input_items(m)],
            "stream": True,
            "store": self.background,  # background mode requires a stored response
        }
        if self.background:
            body["background"] = True
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
        return _ResponsesStream(self.name, self.model, background=self.background)

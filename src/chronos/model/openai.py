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

__all__ = ["AzureOpenAIProvider", "OpenAIProvider"]

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "stop": StopReason.END,
    "eos": StopReason.END,
    "end_turn": StopReason.END,
    "length": StopReason.MAX_TOKENS,
    "model_length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_CALL,
    "function_call": StopReason.TOOL_CALL,
    "content_filter": StopReason.CONTENT_FILTER,
}


def _usage(raw: Mapping[str, Any]) -> Usage:
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens"),
        output_tokens=raw.get("completion_tokens"),
        total_tokens=raw.get("total_tokens"),
        raw=raw,
        reasoning_tokens=completion.get("reasoning_tokens"),
        # DeepSeek reports its cache hits at the top level.
        cached_tokens=prompt.get("cached_tokens", raw.get("prompt_cache_hit_tokens")),
        cache_write_tokens=prompt.get("cache_write_tokens"),
    )


class _ChatCompletionsStream(StreamTranslator):
    """One Chat Completions stream: `data: {chunk}` events, then `data: [DONE]`."""

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        data = event.data
        if data[:1] != "{":  # chunks are JSON objects: the tests below are for the rest
            if data == "[DONE]":
                out.end_stream()
                return
            if not data or data.isspace():  # an empty `data:` keep-alive
                return
        chunk = self.loads(data)
        if not isinstance(chunk, dict):
            raise self.stream_error(f"unexpected chunk {data[:200]!r}")
        error = chunk.get("error")
        if error or event.event == "error":
            self._raise_error(error if error is not None else chunk)
        # Set only on change: most chunks repeat the same id and model.
        value = chunk.get("id")
        if value and value != out.id:
            out.id = value
        value = chunk.get("model")
        if value and value != out.model:
            out.model = value
        usage = chunk.get("usage")
        if usage is None and "x_groq" in chunk:
            usage = (chunk["x_groq"] or {}).get("usage")
        if usage:
            out.usage(_usage(usage))
        choices = chunk.get("choices")
        if choices:
            for choice in choices:
                if choice.get("index", 0) == 0:
                    delta = choice.get("delta")
                    if delta:
                        text = delta.get("content")
                        if type(text) is str and len(delta) == 1:  # most chunks: text only
                            out.text(text)
                        else:
                            self._delta(delta, out)
                    finish = choice.get("finish_reason")
                    if finish:
                        out.stop(finish, STOP_REASONS.get(finish, StopReason.OTHER))

    def _delta(self, delta: Mapping[str, Any], out: ChunkBuilder) -> None:
        # One pass over the keys present.
        for key, value in delta.items():
            if not value:
                continue
            if key == "content":
                if isinstance(value, str):
                    out.text(value)
                else:
                    self._content_parts(value, out)
            elif key == "refusal":
                if isinstance(value, str):
                    out.refusal(value)
            elif key == "reasoning" or (
                key == "reasoning_content" and "reasoning" not in delta
            ):
                if isinstance(value, str):
                    out.reasoning(value)
            elif key == "tool_calls":
                for call in value:
                    function = call.get("function") or {}
                    index = call.get("index")
                    out.tool_fragment(
                        index if index is not None else call.get("id"),
                        id=call.get("id"),
                        name=function.get("name"),
                        arguments=function.get("arguments"),
                    )
            elif key == "function_call":  # the pre-tools `functions` API
                out.tool_fragment(
                    "function_call", name=value.get("name"), arguments=value.get("arguments")
                )

    @staticmethod
    def _content_parts(parts: Sequence[Any], out: ChunkBuilder) -> None:
        # Mistral: [{"type": "thinking", "thinking": [{"type": "text", ...}]}, {"type": "text"}]
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "thinking":
                for inner in part.get("thinking") or ():
                    if isinstance(inner, dict) and inner.get("text"):
                        out.reasoning(inner["text"])
            elif part.get("type") == "text" and part.get("text"):
                out.text(part["text"])

    def _raise_error(self, error: Any) -> None:
        if isinstance(error, dict):
            inner = error.get("error", error)
            if isinstance(inner, dict):
                message = str(inner.get("message") or inner)
                code = inner.get("code") or inner.get("type")
                raise self.stream_error(message, code=str(code) if code is not None else None)
        raise self.stream_error(str(error))


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

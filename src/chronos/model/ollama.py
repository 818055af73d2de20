"""Ollama's native chat API (`POST /api/chat`, newline-delimited JSON).

```python
from chronos.model.ollama import OllamaProvider

provider = OllamaProvider("llama3.2")                        # http://localhost:11434
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

Each line is one JSON object: `message.content` is text, `message.thinking` reasoning (with
`think` on), `message.tool_calls` whole calls (no ids). The last line has `done: true`, the
`done_reason` and the counters (`prompt_eval_count`, `eval_count`, `*_duration` in ns). An
`{"error": ...}` line is an error mid-stream. For Ollama's OpenAI-compatible `/v1`, use
`OpenAIProvider` with `base_url=".../v1"` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import NDJSONDecoder
from chronos.model._provider import Decoder, HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import ChatRequest, ImagePart, Message, StopReason, Usage

__all__ = ["OllamaProvider"]

OLLAMA_BASE_URL: Final = "http://localhost:11434"

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "stop": StopReason.END,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_CALL,
}


def _usage(done: Mapping[str, Any]) -> Usage:
    raw = {k: v for k, v in done.items() if k.endswith(("_count", "_duration"))}
    prompt = raw.get("prompt_eval_count")
    output = raw.get("eval_count")
    total = prompt + output if prompt is not None and output is not None else None
    return Usage(input_tokens=prompt, output_tokens=output, total_tokens=total, raw=raw)


class _ChatStream(StreamTranslator):
    """One `/api/chat` stream: JSON lines, the last with `done: true`."""

    def new_decoder(self, content_type: str = "") -> Decoder:
        return NDJSONDecoder()

    def on_event(self, event: bytes, out: ChunkBuilder) -> None:
        line = self.loads(event)
        if not isinstance(line, dict):
            raise self.stream_error(f"unexpected line {event[:200]!r}")
        if line.get("error"):
            raise self.stream_error(str(line["error"]))
        if line.get("model") and line["model"] != out.model:
            out.model = line["model"]
        message = line.get("message") or {}
        if message.get("content"):
            out.text(message["content"])
        if message.get("thinking"):
            out.reasoning(message["thinking"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            out.tool_call(id=call.get("id"), name=function.get("name") or "",
                          arguments=function.get("arguments") or {})
        if line.get("done"):
            out.usage(_usage(line))
            reason = line.get("done_reason") or "stop"
            out.stop(reason, STOP_REASONS.get(reason, StopReason.OTHER))
            out.end_stream()


def _message(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    images = [p.data for p in message.content if isinstance(p, ImagePart) and p.data] \
        if not isinstance(message.content, str) else []
    if images:
        out["images"] = images  # base64; Ollama does not fetch URLs
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.parsed_arguments()}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        name = message.name or names.get(message.tool_call_id or "")
        if name:
            out["tool_name"] = name
    return out


class OllamaProvider(HTTPProvider):
    """A model served by Ollama, through its native `/api/chat`.

    ```python
    provider = OllamaProvider("qwen3", think=True)   # reasoning arrives in chunk.reasoning
    ```

    The server is `base_url`, else `OLLAMA_HOST`, else `http://localhost:11434`. No key is
    needed; one given (or `OLLAMA_API_KEY`, for ollama.com) is sent as a bearer token.
    `think` asks thinking models to reason (None leaves the model's default);
    `keep_alive` is how long the model stays loaded (e.g. "5m").
    """

    name = "ollama"
    default_base_url = OLLAMA_BASE_URL
    api_key_env = ("OLLAMA_API_KEY",)
    api_key_required = False

    def __init__(
        self,
        model: str = "llama3.2",
        *,
        base_url: str | None = None,
        think: bool | None = None,
        keep_alive: str | None = None,
        **kwargs: Any,
    ) -> None:
        host = base_url or os.environ.get("OLLAMA_HOST") or OLLAMA_BASE_URL
        if "://" not in host:  # OLLAMA_HOST is often "127.0.0.1:11434"
            host = "http://" + host
        super().__init__(model, base_url=host, **kwargs)
        self.think = think
        self.keep_alive = keep_alive

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        names = {call.id: call.name for m in req.messages for call in m.tool_calls}
        body: dict[str, Any] = {
            "model": req.model or self.model,
            "messages": [_message(m, names) for m in req.messages],
            "stream": True,
        }
        options: dict[str, Any] = {}
        for field, value in (("num_predict", req.max_tokens), ("temperature", req.temperature),
                             ("top_p", req.top_p), ("seed", req.seed)):
            if value is not None:
                options[field] = value
        if req.stop:
            options["stop"] = list(req.stop)
        if options:
            body["options"] = options
        if req.response_format is not None:
            schema = (req.response_format.get("json_schema") or {}).get("schema")
            body["format"] = schema or "json"
        if req.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": dict(t.parameters)}}
                for t in req.tools
            ]
        if self.think is not None:
            body["think"] = self.think
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return VendorRequest(path="/api/chat", json=body)

    def _new_translator(self) -> StreamTranslator:
        return _ChatStream(self.name, self.model)


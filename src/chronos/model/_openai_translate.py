"""The per-event work of an OpenAI Chat Completions stream, compiled by mypyc.

`openai._ChatCompletionsStream` is the translator the providers use (`OpenAIProvider`,
llama.cpp's); it stays an interpreted `StreamTranslator` that users may subclass, and hands
each event to `translate` here. This module holds no class: a compiled class could not have
interpreted subclasses, and functions need none. The interpreted build runs the same source.

Per event this is one `orjson.loads` and a few dict lookups: the common text-only delta
goes straight to `ChunkBuilder.text`, everything else through `_delta`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._translate import EventTranslation, parse_object
from chronos.model._types import StopReason, Usage

if TYPE_CHECKING:
    from chronos.model._provider import StreamTranslator

__all__ = ["STOP_REASONS", "ChatCompletionsEvents"]

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


class ChatCompletionsEvents(EventTranslation):
    """A Chat Completions stream's translation (it keeps no state)."""

    def on_event(self, translator: StreamTranslator, event: SSEEvent, out: ChunkBuilder) -> None:
        """One event: `data: {chunk}`, `data: [DONE]`, or an empty keep-alive."""
        data = event.data
        if data[:1] != "{":  # chunks are JSON objects: the tests below are for the rest
            if data == "[DONE]":
                out.end_stream()
                return
            if not data or data.isspace():  # an empty `data:` keep-alive
                return
        chunk = parse_object(translator, data, "chunk")
        error = chunk.get("error")
        if error or event.event == "error":
            _raise_error(translator, error if error is not None else chunk)
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
        # Typed where the compiled build reads them: a list and dicts, checked as they are
        # taken (a value of another type is a malformed chunk, as it is interpreted).
        choices: list[Any] | None = chunk.get("choices") or None
        if choices:
            for item in choices:
                choice: dict[str, Any] = item
                if choice.get("index", 0) == 0:
                    found = choice.get("delta")
                    if found:
                        delta: dict[str, Any] = found
                        text = delta.get("content")
                        if type(text) is str and len(delta) == 1:  # most chunks: text only
                            out.text(text)
                        else:
                            _delta(delta, out)
                    finish = choice.get("finish_reason")
                    if finish:
                        out.stop(finish, STOP_REASONS.get(finish, StopReason.OTHER))


def _delta(delta: Mapping[str, Any], out: ChunkBuilder) -> None:
    # One pass over the keys present.
    for key, value in delta.items():
        if not value:
            continue
        if key == "content":
            if isinstance(value, str):
                out.text(value)
            else:
                _content_parts(value, out)
        elif key == "refusal":
            if isinstance(value, str):
                out.refusal(value)
        elif key == "reasoning" or (key == "reasoning_content" and "reasoning" not in delta):
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


def _raise_error(translator: StreamTranslator, error: Any) -> None:
    if isinstance(error, dict):
        inner = error.get("error", error)
        if isinstance(inner, dict):
            message = str(inner.get("message") or inner)
            code = inner.get("code") or inner.get("type")
            raise translator.stream_error(message, code=str(code) if code is not None else None)
    raise translator.stream_error(str(error))


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

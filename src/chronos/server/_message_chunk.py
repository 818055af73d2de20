"""A model token as the SDKs receive it: a LangChain AI message (chunk)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["is_text_only", "message_chunk", "text_chunk_tail"]


def message_chunk(message_id: str, content: str, *, complete: bool = False,
                  delta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A LangChain AI message (chunk) as the SDKs receive it.

    From a token's `graph.MessageDelta` (`delta`): its reasoning goes to
    `additional_kwargs.reasoning_content`, its tool-call fragments to `tool_call_chunks` and
    its complete tool calls (arguments parsed) to `tool_calls`, as LangChain's chat models put
    them; the call's usage, on its last delta, to `usage_metadata`.
    """
    delta = delta or {}
    reasoning = delta.get("reasoning") or ""
    # Most deltas are text alone: the fragments and calls are looked at only when present.
    deltas = delta.get("tool_call_deltas")
    chunks = [{"name": d.get("name"), "args": d.get("arguments") or "", "id": d.get("id"),
               "index": d.get("index"), "type": "tool_call_chunk"}
              for d in deltas if isinstance(d, Mapping)] if deltas else []
    whole = delta.get("tool_calls")
    calls = [{"name": c.get("name"), "args": _arguments(c.get("arguments")), "id": c.get("id"),
              "type": "tool_call"}
             for c in whole if isinstance(c, Mapping)] if whole else []
    usage = delta.get("usage")
    message = {"content": content,
               "additional_kwargs": {"reasoning_content": reasoning} if reasoning else {},
               "response_metadata": {}, "type": "ai" if complete else "AIMessageChunk",
               "name": None, "id": message_id, "example": False, "tool_calls": calls,
               "invalid_tool_calls": [],
               "usage_metadata": None if usage is None else _usage_metadata(usage)}
    if not complete:
        message["tool_call_chunks"] = chunks
    return message


def is_text_only(delta: Mapping[str, Any]) -> bool:
    """Whether `message_chunk` makes of `delta` a chunk that differs from another of its
    message's in its content alone (no reasoning, tool calls or usage): most tokens."""
    return not (delta.get("reasoning") or delta.get("tool_call_deltas")
                or delta.get("tool_calls") or delta.get("usage") is not None)


_CONTENT_HEAD: Final = b'{"content":""'


def text_chunk_tail(message_id: str) -> bytes:
    """The JSON of a text-only chunk of `message_id` after its content, shared by the
    message's tokens: such a chunk is `b'{"content":' + orjson.dumps(content) + tail`, the
    bytes `orjson.dumps(message_chunk(message_id, content))` gives, one encoding of the
    content instead of the whole chunk's per token."""
    encoded = orjson.dumps(message_chunk(message_id, ""), default=repr)
    assert encoded.startswith(_CONTENT_HEAD)  # "content" is the chunk's first key
    return encoded[len(_CONTENT_HEAD):]


def _usage_metadata(usage: Any) -> dict[str, Any] | None:
    """A `model.Usage` (as JSON) as LangChain's `UsageMetadata`."""
    if not isinstance(usage, Mapping):
        return None
    metadata: dict[str, Any] = {
        "input_tokens": usage.get("input_tokens") or 0,
        "output_tokens": usage.get("output_tokens") or 0,
        "total_tokens": usage.get("total_tokens")
        or (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0),
    }
    given = {key: usage[name] for key, name in (("cache_read", "cached_tokens"),
                                                ("cache_creation", "cache_write_tokens"))
             if usage.get(name) is not None}
    if given:
        metadata["input_token_details"] = given
    if usage.get("reasoning_tokens") is not None:
        metadata["output_token_details"] = {"reasoning": usage["reasoning_tokens"]}
    return metadata


def _arguments(text: Any) -> Any:
    try:
        return orjson.loads(text) if isinstance(text, str) else {}
    except orjson.JSONDecodeError:
        return {}

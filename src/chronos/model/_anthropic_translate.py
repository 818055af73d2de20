"""The per-event work of an Anthropic Messages stream, compiled by mypyc.

`anthropic._MessagesStream` stays an interpreted `StreamTranslator` (users may subclass
translators; a compiled class could not have interpreted subclasses); it keeps one
`MessagesEvents` per stream, which holds the stream's state (open tool blocks, usage so far)
and translates each event. The interpreted build runs the same source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._translate import EventTranslation, parse_object
from chronos.model._types import StopReason, Usage

if TYPE_CHECKING:
    from chronos.model._provider import StreamTranslator

__all__ = ["STOP_REASONS", "MessagesEvents"]

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "end_turn": StopReason.END,
    "stop_sequence": StopReason.END,
    "tool_use": StopReason.TOOL_CALL,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "refusal": StopReason.CONTENT_FILTER,
    "pause_turn": StopReason.OTHER,  # a server tool loop paused; send the turn back to resume
}


class MessagesEvents(EventTranslation):
    """One Messages stream's state and per-event translation; content blocks are keyed by
    their `index`. `translator` supplies the typed, redacted errors."""

    def __init__(self) -> None:
        self._usage: dict[str, Any] = {}
        # index -> the input the block started with, for client tool_use blocks only.
        self._tools: dict[Any, Any] = {}
        self._streamed: set[Any] = set()

    def on_event(self, translator: StreamTranslator, event: SSEEvent, out: ChunkBuilder) -> None:
        """One event: `event: <type>` with its JSON `data:`."""
        data = parse_object(translator, event.data, "event")
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta: dict[str, Any] = data.get("delta") or {}  # compiled: checked a dict
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
            raise translator.stream_error(
                str(error.get("message") or error), code=error.get("type")
            )
        # "ping" and event types added later are skipped.

    def _start(self, index: Any, block: Mapping[str, Any], out: ChunkBuilder) -> None:
        kind = block.get("type")
        if kind == "text":
            out.text(block.get("text") or "")
        elif kind == "thinking":
            out.reasoning(block.get("thinking") or "")
        elif kind == "tool_use":
            self._tools[index] = block.get("input")
            out.tool_fragment(index, id=block.get("id"), name=block.get("name"))

    def _delta(self, index: Any, delta: Mapping[str, Any], out: ChunkBuilder) -> None:
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

    def _stop(self, index: Any, out: ChunkBuilder) -> None:
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
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total,
        raw=raw,
        reasoning_tokens=(raw.get("output_tokens_details") or {}).get("thinking_tokens"),
        cached_tokens=raw.get("cache_read_input_tokens"),
        cache_write_tokens=raw.get("cache_creation_input_tokens"),
    )

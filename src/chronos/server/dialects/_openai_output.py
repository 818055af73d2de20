"""What the OpenAI dialect reads from a run: its token deltas, and its final answer.

A token event's data is a `graph.MessageDelta` as JSON (`message_id`, `content`,
`reasoning`, `tool_call_deltas`, `tool_calls`). A graph that streamed nothing answers with
the last assistant message of its final state's `messages`, written either OpenAI's way
(`{"role": "assistant", "content", "tool_calls": [{"id", "function": {...}}]}`) or as a
`model.Message` (`tool_calls: [{"id", "name", "arguments"}]`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "ToolCallPiece", "final_answer", "tool_call_pieces"]


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """A tool call fragment: `id` and `name` on a call's first piece, then more arguments.

    `index` numbers the calls of one model response; None: a whole call on its own.
    """

    index: int | None
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Answer:
    """An assistant message: text and the tool calls it made (each as one whole piece)."""

    content: str
    tool_calls: tuple[ToolCallPiece, ...]


def tool_call_pieces(delta: Mapping[str, Any], streamed_ids: set[str]) -> list[ToolCallPiece]:
    """A delta's tool-call fragments, and its complete calls that came without fragments
    (some providers give only those); `streamed_ids` collects the ids seen as fragments."""
    pieces: list[ToolCallPiece] = []
    for fragment in delta.get("tool_call_deltas") or ():
        call_id = fragment.get("id")
        if call_id:
            streamed_ids.add(call_id)
        pieces.append(ToolCallPiece(int(fragment.get("index") or 0), call_id,
                                    fragment.get("name"), fragment.get("arguments") or ""))
    for call in delta.get("tool_calls") or ():
        if call.get("id") not in streamed_ids:
            streamed_ids.add(call.get("id"))
            pieces.append(ToolCallPiece(None, call.get("id"), call.get("name"),
                                        call.get("arguments") or "{}"))
    return pieces


def final_answer(values: Any) -> Answer:
    """The last assistant message of a final state's `messages` (empty if there is none)."""
    messages = values.get("messages") if isinstance(values, Mapping) else None
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "assistant":
                calls = tuple(_call(i, c) for i, c in enumerate(message.get("tool_calls") or ())
                              if isinstance(c, Mapping))
                return Answer(_text(message.get("content")), calls)
    return Answer("", ())


def _call(index: int, call: Mapping[str, Any]) -> ToolCallPiece:
    function = call.get("function")
    source = function if isinstance(function, Mapping) else call
    arguments = source.get("arguments")
    return ToolCallPiece(index, call.get("id"), source.get("name"),
                         arguments if isinstance(arguments, str) else "{}")


def _text(content: Any) -> str:
    """Text content, or the text of its parts (`{"type": "text", "text": ...}`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return ""

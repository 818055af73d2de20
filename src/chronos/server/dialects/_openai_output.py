"""What the OpenAI dialect reads from a run: its token deltas, its usage, its final answer.

A token event's data is a `graph.MessageDelta` as JSON (`message_id`, `content`,
`reasoning`, `tool_call_deltas`, `tool_calls`, and on a model call's last delta its
`usage`). A graph that streamed nothing answers with the last assistant message of its final
state's `messages`, written either OpenAI's way (`{"role": "assistant", "content",
"tool_calls": [{"id", "function": {...}}]}`) or as a `model.Message` (`tool_calls: [{"id",
"name", "arguments"}]`).

A run that pauses (`graph.interrupt(value)`, or before an interrupt node) ends with one call
of the function `interrupt` per question, its arguments the question's value (an object as
it is, anything else as `{"value": ...}`; a pause before nodes `{"paused_before": [...]}`).
The call id names the paused thread and the question, `call_interrupt_<thread>_<question id>`
(no question id for a pause before nodes), so the tool result that answers it resumes that
thread (`interrupt_answers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from chronos.model import Usage
from chronos.server._stream_modes import api_interrupts

__all__ = ["INTERRUPT_CALL", "Answer", "ToolCallPiece", "add_usage", "chat_usage",
           "final_answer", "interrupt_calls", "interrupt_questions", "responses_usage",
           "tool_call_pieces"]

INTERRUPT_CALL: Final = "call_interrupt_"  # the id prefix of a pause's tool calls


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


def add_usage(total: Usage | None, token: Mapping[str, Any]) -> Usage | None:
    """The run's usage so far, with a model call's if this delta carries it."""
    counts = token.get("usage")
    if not isinstance(counts, Mapping):
        return total
    usage = Usage.from_counts(counts)
    return usage if total is None else total + usage


def _total(usage: Usage) -> int | None:
    # From the parts when both are known: a sum of calls of which one reported no total
    # would otherwise be short.
    if usage.input_tokens is None or usage.output_tokens is None:
        return usage.total_tokens
    return usage.input_tokens + usage.output_tokens


def chat_usage(usage: Usage | None) -> dict[str, Any] | None:
    """Chat Completions' `usage` (None: no model call reported any; an unreported count is
    null, not a made-up zero)."""
    if usage is None:
        return None
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": _total(usage),
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def responses_usage(usage: Usage | None) -> dict[str, Any] | None:
    """The Responses API's `usage`, likewise."""
    if usage is None:
        return None
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "total_tokens": _total(usage),
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def interrupt_questions(data: Any) -> dict[str, Any]:
    """An `interrupt` event's data as {question id: tool call arguments} ("" for a pause
    before nodes, which asked nothing)."""
    asked = {str(q["id"]): q["value"] if isinstance(q["value"], dict) else {"value": q["value"]}
             for q in api_interrupts(data)}
    if asked:
        return asked
    nodes = [n for n in data or () if isinstance(n, str)]
    return {"": {"paused_before": nodes}} if nodes else {}


def interrupt_calls(thread_id: str, questions: Mapping[str, Any]) -> tuple[ToolCallPiece, ...]:
    """A pause's questions as whole `interrupt` tool calls, answerable on `thread_id`."""
    return tuple(ToolCallPiece(None, f"{INTERRUPT_CALL}{thread_id}_{key}", "interrupt",
                               orjson.dumps(arguments, default=repr).decode())
                 for key, arguments in questions.items())

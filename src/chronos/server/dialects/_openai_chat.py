"""A run as a chat completion: its token events as `chat.completion.chunk` deltas.

One `ChatCompletion` per request. Every model call of the run (each `message_id`) adds to the
one assistant message the client sees: text as `content`, reasoning as `reasoning_content`
(the field DeepSeek, vLLM and llama.cpp's servers use), tool-call fragments as `tool_calls`
deltas, numbered across the run so that two model calls' first calls do not collide. The
finish reason is "tool_calls" when the last model call asked for tools or the run paused,
"stop" otherwise.
`usage` adds up what every model call of the run reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from chronos.model import Usage
from chronos.server.dialects._openai_output import (
    Answer,
    ToolCallPiece,
    add_usage,
    chat_usage,
    final_answer,
    tool_call_pieces,
)

__all__ = ["ChatCompletion"]

_DONE: Final = b"data: [DONE]\n\n"


class ChatCompletion:
    """Builds one completion, streamed (`chunk`, `last_chunks`) or whole (`add`, `whole`)."""

    def __init__(self, completion_id: str, model: str, *, include_usage: bool = False) -> None:
        self.id = completion_id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.streamed = False  # whether any token gave something to show
        self.usage: Usage | None = None
        self._indexes: dict[tuple[str, object], int] = {}  # (message id, call) -> index
        self._streamed_ids: set[str] = set()
        self._last_message = ""
        self._last_has_tools = False
        # A chunk is this prefix, the delta, and the suffix: only the delta is encoded per token.
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": self.created,
                "model": model}
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        # Whole-response accumulation, for a non-streaming request.
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self._last_has_tools else "stop"

    def first_chunk(self) -> bytes:
        return self._frame({"role": "assistant", "content": ""})

    def delta(self, token: Mapping[str, Any]) -> dict[str, Any] | None:
        """The chat delta of one token event's data (None: nothing to show)."""
        message_id = str(token.get("message_id", ""))
        self.usage = add_usage(self.usage, token)
        delta: dict[str, Any] = {}
        if token.get("content"):
            delta["content"] = token["content"]
        if token.get("reasoning"):
            delta["reasoning_content"] = token["reasoning"]
        pieces = tool_call_pieces(token, self._streamed_ids)
        if pieces:
            delta["tool_calls"] = [self._call_delta(message_id, p) for p in pieces]
        if not delta:
            return None
        if message_id != self._last_message:
            self._last_message, self._last_has_tools = message_id, False
        self._last_has_tools = self._last_has_tools or bool(pieces)
        self.streamed = True
        return delta

    def answer_delta(self, values: Any) -> dict[str, Any] | None:
        """For a run that streamed nothing: its final state's answer as one delta."""
        answer: Answer = final_answer(values)
        delta: dict[str, Any] = {}
        if answer.content:
            delta["content"] = answer.content
        if answer.tool_calls:
            delta["tool_calls"] = [self._call_delta("", p) for p in answer.tool_calls]
            self._last_has_tools = True
        return delta or None

    def calls_delta(self, calls: tuple[ToolCallPiece, ...]) -> dict[str, Any] | None:
        """Whole tool calls the run ends with (a pause's `interrupt` calls) as one delta."""
        if not calls:
            return None
        self._last_has_tools = True
        return {"tool_calls": [self._call_delta("", p) for p in calls]}

    def _call_delta(self, message_id: str, piece: ToolCallPiece) -> dict[str, Any]:
        key = (message_id, piece.index if piece.index is not None else piece.id)
        index = self._indexes.setdefault(key, len(self._indexes))
        call: dict[str, Any] = {"index": index, "function": {"arguments": piece.arguments}}
        if piece.id is not None:
            call["id"] = piece.id
            call["type"] = "function"
        if piece.name is not None:
            call["function"]["name"] = piece.name
        return call

    # Streaming.

    def chunk(self, delta: Mapping[str, Any]) -> bytes:
        return self._frame(delta)

    def _frame(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> bytes:
        reason = b"null" if finish_reason is None else b'"' + finish_reason.encode() + b'"'
        return (self._prefix + orjson.dumps(delta) + b',"logprobs":null,"finish_reason":'
                + reason + b"}]}\n\n")

    def last_chunks(self) -> bytes:
        """The finish chunk, the usage chunk if asked for, and `[DONE]`."""
        out = self._frame({}, self.finish_reason)
        if self.include_usage:
            out += self._envelope([], usage=chat_usage(self.usage))
        return out + _DONE

    def error_chunk(self, message: str, code: str) -> bytes:
        """An error once streaming began (the `openai` SDKs raise `APIError` on it)."""
        body = {"error": {"message": message, "type": "server_error", "param": None,
                          "code": code}}
        return b"data: " + orjson.dumps(body) + b"\n\n" + _DONE

    def _envelope(self, choices: list[Any], **extra: Any) -> bytes:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **extra}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    # Whole.

    def add(self, delta: Mapping[str, Any]) -> None:
        """Accumulate a delta into the whole message, as the SDKs' stream helpers do."""
        if "content" in delta:
            self._content.append(delta["content"])
        if "reasoning_content" in delta:
            self._reasoning.append(delta["reasoning_content"])
        for call in delta.get("tool_calls") or ():
            whole = self._calls.setdefault(call["index"], {
                "id": None, "type": "function", "function": {"name": None, "arguments": ""}})
            if "id" in call:
                whole["id"] = call["id"]
            if "name" in call["function"]:
                whole["function"]["name"] = call["function"]["name"]
            whole["function"]["arguments"] += call["function"]["arguments"]

    def whole(self) -> dict[str, Any]:
        """The `chat.completion` object of the accumulated message."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._content),
                                   "refusal": None}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "usage": chat_usage(self.usage),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": self.finish_reason}]}

"""A run as an OpenAI Responses API response: output items and their streaming events.

Each model call of the run (each `message_id`) gives output items in the order its pieces
first arrive: a `reasoning` item for its reasoning (`response.reasoning_text.delta`), a
`message` item for its text (`response.output_text.delta`), a `function_call` item per tool
call (`response.function_call_arguments.delta`). A call's items close (their `.done`
events) when the next model call begins or the run ends. The same object gives the whole
response for a non-streaming request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from chronos.model import Usage
from chronos.server.dialects._openai_output import (
    ToolCallPiece,
    add_usage,
    final_answer,
    responses_usage,
    tool_call_pieces,
)

__all__ = ["Response"]


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class Response:
    """One response being built; each method returns the SSE frames of what it did."""

    def __init__(self, response_id: str, model: str) -> None:
        self.id = response_id
        self.model = model
        self.created_at = int(time.time())
        self.status = "in_progress"
        self.error: dict[str, Any] | None = None
        self.output: list[dict[str, Any]] = []
        self.streamed = False
        self.usage: Usage | None = None  # what the run's model calls reported, added up
        self._open: dict[tuple[str, object], int] = {}  # (kind, key) -> output index
        self._texts: dict[int, list[str]] = {}  # what each open item has gathered
        self._message = ""
        self._streamed_ids: set[str] = set()
        self._sequence = 0

    def body(self) -> dict[str, Any]:
        """The `response` object as it stands."""
        return {"id": self.id, "object": "response", "created_at": self.created_at,
                "model": self.model, "status": self.status, "output": self.output,
                "error": self.error, "incomplete_details": None, "instructions": None,
                "metadata": {}, "parallel_tool_calls": True, "temperature": None,
                "tool_choice": "auto", "tools": [], "top_p": None,
                "usage": responses_usage(self.usage)}

    def _event(self, type: str, **data: Any) -> bytes:
        self._sequence += 1
        payload = {"type": type, "sequence_number": self._sequence, **data}
        return b"event: " + type.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def opening(self) -> bytes:
        return (self._event("response.created", response=self.body())
                + self._event("response.in_progress", response=self.body()))

    def token(self, token: Mapping[str, Any]) -> bytes:
        """The events of one token event's data."""
        message_id = str(token.get("message_id", ""))
        self.usage = add_usage(self.usage, token)
        out = b""
        if message_id != self._message:
            out += self._close_all()
            self._message = message_id
        reasoning, content = token.get("reasoning"), token.get("content")
        if reasoning:
            out += self._text("reasoning", reasoning)
        if content:
            out += self._text("message", content)
        for piece in tool_call_pieces(token, self._streamed_ids):
            out += self._call(piece)
        self.streamed = self.streamed or bool(out)
        return out

    def answer(self, values: Any) -> bytes:
        """For a run that streamed nothing: its final state's answer as output items."""
        answer = final_answer(values)
        out = self._text("message", answer.content) if answer.content else b""
        for piece in answer.tool_calls:
            out += self._call(piece)
        return out

    def calls(self, calls: tuple[ToolCallPiece, ...]) -> bytes:
        """Whole tool calls the run ends with (a pause's `interrupt` calls) as items."""
        return b"".join(self._call(piece) for piece in calls)

    def _text(self, kind: str, text: str) -> bytes:
        key = (kind, self._message)
        index = self._open.get(key)
        out = b""
        if index is None:
            index = self._open[key] = len(self.output)
            self._texts[index] = []
            if kind == "message":
                item = {"id": _item_id("msg"), "type": "message", "status": "in_progress",
                        "role": "assistant", "content": []}
                part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
            else:
                item = {"id": _item_id("rs"), "type": "reasoning", "status": "in_progress",
                        "summary": [], "content": []}
                part = {"type": "reasoning_text", "text": ""}
            self.output.append(item)
            out += self._event("response.output_item.added", output_index=index, item=item)
            out += self._event("response.content_part.added", item_id=item["id"],
                               output_index=index, content_index=0, part=part)
        self._texts[index].append(text)
        item_id = self.output[index]["id"]
        if kind == "message":
            return out + self._event("response.output_text.delta", item_id=item_id,
                                     output_index=index, content_index=0, delta=text,
                                     logprobs=[])
        return out + self._event("response.reasoning_text.delta", item_id=item_id,
                                 output_index=index, content_index=0, delta=text)

    def _call(self, piece: ToolCallPiece) -> bytes:
        key = ("call", (self._message, piece.index if piece.index is not None else piece.id))
        index = self._open.get(key)
        out = b""
        if index is None:
            index = self._open[key] = len(self.output)
            self._texts[index] = []
            item = {"id": _item_id("fc"), "type": "function_call", "status": "in_progress",
                    "call_id": piece.id or _item_id("call"), "name": piece.name or "",
                    "arguments": ""}
            self.output.append(item)
            out += self._event("response.output_item.added", output_index=index, item=item)
        if not piece.arguments:
            return out
        self._texts[index].append(piece.arguments)
        return out + self._event("response.function_call_arguments.delta",
                                 item_id=self.output[index]["id"], output_index=index,
                                 delta=piece.arguments)

    def _close_all(self) -> bytes:
        out = b""
        for index in sorted(self._open.values()):
            out += self._close(index)
        self._open.clear()
        return out

    def _close(self, index: int) -> bytes:
        item = self.output[index]
        text = "".join(self._texts.pop(index))
        item["status"] = "completed"
        item_id = item["id"]
        out = b""
        if item["type"] == "function_call":
            item["arguments"] = text
            out += self._event("response.function_call_arguments.done", item_id=item_id,
                               output_index=index, name=item["name"], arguments=text)
        else:
            if item["type"] == "message":
                part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
                out += self._event("response.output_text.done", item_id=item_id,
                                   output_index=index, content_index=0, text=text, logprobs=[])
            else:
                part = {"type": "reasoning_text", "text": text}
                out += self._event("response.reasoning_text.done", item_id=item_id,
                                   output_index=index, content_index=0, text=text)
            item["content"] = [part]
            out += self._event("response.content_part.done", item_id=item_id,
                               output_index=index, content_index=0, part=part)
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def completed(self) -> bytes:
        """Close what is open; `response.completed` with the whole response."""
        out = self._close_all()
        self.status = "completed"
        return out + self._event("response.completed", response=self.body())

    def failed(self, message: str, code: str) -> bytes:
        """An `error` event, then `response.failed` (what OpenAI sends when a response fails)."""
        out = self._close_all()
        self.status = "failed"
        self.error = {"code": "server_error", "message": message}
        return (out + self._event("error", code=code, message=message, param=None)
                + self._event("response.failed", response=self.body()))

"""A run's model tokens as the parts UI protocols stream: opened, continued, closed (pure).

AG-UI and the AI SDK both show a model's output as parts that open, grow by deltas and close
(text, reasoning, tool calls), where chronos streams `token` events carrying a
`graph.MessageDelta` (as a JSON object). `MessageParts` follows those deltas and says when
each part opens, grows and closes, so each dialect only names the pieces in its own wire
format:

```python
parts = MessageParts()
for kind, part_id, a, b in parts.token("agent", delta):
    ...   # ("text-start", id, message_id, None), ("text-delta", id, "Hel", None), ...
for kind, part_id, a, b in parts.close_node("agent"):
    ...   # the node ended: whatever it left open closes
```

Kinds (each a `Part` tuple `(kind, id, a, b)`):
- `text-start` (id = message id) / `text-delta` (a = text) / `text-end`;
- `reasoning-start` (id = message id + "-reasoning", a = message id) / `reasoning-delta`
  (a = text) / `reasoning-end`;
- `tool-start` (id = tool call id, a = tool name, b = message id) / `tool-delta` (a = JSON
  text) / `tool-end` (a = tool name, b = the whole arguments JSON text).

Within one message a part closes when the next kind begins (reasoning, then text, then tool
calls, as models stream them), so at most one text or reasoning part per message is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["REASONING_SUFFIX", "MessageParts", "Part", "tool_results"]

Part = tuple[str, str, Any, Any]
REASONING_SUFFIX: Final = "-reasoning"


class _Message:
    __slots__ = ("calls", "id", "node_id", "open", "pending")

    def __init__(self, message_id: str, node_id: str) -> None:
        self.id = message_id
        self.node_id = node_id
        self.open = ""  # "text", "reasoning" or ""
        # Tool calls by index: [id, name, arguments so far, started]
        self.calls: dict[int, list[Any]] = {}
        self.pending: list[int] = []  # indexes of calls started and not yet complete


class MessageParts:
    """Follows a run's token deltas, message by message (see the module docstring)."""

    def __init__(self) -> None:
        self._messages: dict[str, _Message] = {}

    def token(self, node_id: str, delta: Mapping[str, Any]) -> list[Part]:
        """The parts one `token` event's delta opens, grows or closes."""
        message_id = str(delta.get("message_id") or "")
        message = self._messages.get(message_id)
        if message is None:
            message = self._messages[message_id] = _Message(message_id, node_id)
        out: list[Part] = []
        reasoning = delta.get("reasoning")
        if reasoning:
            self._switch(out, message, "reasoning")
            out.append(("reasoning-delta", message_id + REASONING_SUFFIX, reasoning, None))
        content = delta.get("content")
        if content:
            self._switch(out, message, "text")
            out.append(("text-delta", message_id, content, None))
        for fragment in delta.get("tool_call_deltas") or ():
            if isinstance(fragment, Mapping):
                self._fragment(out, message, fragment)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, Mapping):
                self._complete(out, message, call)
        return out

    def close_node(self, node_id: str) -> list[Part]:
        """What the messages of `node_id` left open, closed (the node has ended)."""
        out: list[Part] = []
        for message in [m for m in self._messages.values() if m.node_id == node_id]:
            self._close(out, message)
            del self._messages[message.id]
        return out

    def close_all(self) -> list[Part]:
        """Everything still open, closed (the run has ended)."""
        out: list[Part] = []
        for message in self._messages.values():
            self._close(out, message)
        self._messages.clear()
        return out

    def _switch(self, out: list[Part], message: _Message, kind: str) -> None:
        if message.open == kind:
            return
        self._end_open(out, message)
        message.open = kind
        if kind == "text":
            out.append(("text-start", message.id, message.id, None))
        else:
            out.append(("reasoning-start", message.id + REASONING_SUFFIX, message.id, None))

    def _end_open(self, out: list[Part], message: _Message) -> None:
        if message.open == "text":
            out.append(("text-end", message.id, None, None))
        elif message.open == "reasoning":
            out.append(("reasoning-end", message.id + REASONING_SUFFIX, None, None))
        message.open = ""

    def _fragment(self, out: list[Part], message: _Message, fragment: Mapping[str, Any]) -> None:
        index = fragment.get("index")
        index = index if isinstance(index, int) else len(message.calls)
        call = message.calls.get(index)
        if call is None:
            call = message.calls[index] = [fragment.get("id"), fragment.get("name"), "", False]
        else:
            call[0] = call[0] or fragment.get("id")
            call[1] = call[1] or fragment.get("name")
        arguments = fragment.get("arguments") or ""
        if not call[3] and call[0] and call[1]:
            self._end_open(out, message)
            call[3] = True
            message.pending.append(index)
            out.append(("tool-start", call[0], call[1], message.id))
            if call[2]:  # fragments that came before the call had its id and name
                out.append(("tool-delta", call[0], call[2], None))
        call[2] += arguments
        if call[3] and arguments:
            out.append(("tool-delta", call[0], arguments, None))

    def _complete(self, out: list[Part], message: _Message, done: Mapping[str, Any]) -> None:
        """A complete tool call: ends its streamed part, or stands for one never streamed."""
        call_id = str(done.get("id") or "")
        name = str(done.get("name") or "")
        arguments = str(done.get("arguments") or "{}")
        for index in message.pending:
            if message.calls[index][0] == call_id:
                message.pending.remove(index)
                out.append(("tool-end", call_id, name, arguments))
                return
        self._end_open(out, message)
        out.append(("tool-start", call_id, name, message.id))
        out.append(("tool-delta", call_id, arguments, None))
        out.append(("tool-end", call_id, name, arguments))

    def _close(self, out: list[Part], message: _Message) -> None:
        self._end_open(out, message)
        for index in message.pending:
            call_id, name, arguments, _ = message.calls[index]
            out.append(("tool-end", call_id, name, arguments or "{}"))
        message.pending.clear()


def tool_results(update: Any) -> list[tuple[str, str, Any]]:
    """The tool messages a node's update adds to `messages`: (message id, tool call id,
    content), the content as text (JSON unless it is a string) and the message id made up
    from the call's when the message has none."""
    messages = update.get("messages") if isinstance(update, Mapping) else None
    if not isinstance(messages, list):
        return []
    out = []
    for m in messages:
        if isinstance(m, Mapping) and m.get("role") == "tool" and m.get("tool_call_id"):
            content = m.get("content")
            text = content if isinstance(content, str) else orjson.dumps(content).decode()
            call_id = str(m["tool_call_id"])
            out.append((str(m.get("id") or f"result-{call_id}"), call_id, text))
    return out

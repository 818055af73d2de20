"""The values that cross the provider interface: requests, messages, responses, tool calls.

Frozen, slotted dataclasses: a stream creates one `ChatResponse` per chunk, so they must be
cheap to build, and a chunk handed to a UI must not change under it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "ImagePart",
    "Message",
    "Role",
    "StopReason",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class TextPart:
    """A piece of text inside a multi-modal message."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image inside a multi-modal message: a URL, or base64 `data` with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str = "image/png"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call: the id the vendor gave it, the tool's name, JSON arguments.

    `arguments` is always a JSON object as text; a call without arguments has `"{}"`.
    `signature` is an opaque token some vendors attach to a call and require back with it
    in the next turn (Gemini's `thoughtSignature`, without which Gemini 3 rejects the
    follow-up request); keep the `ToolCall` in the assistant `Message` and it is sent back.
    """

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON."""
        return orjson.loads(self.arguments or "{}")


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call as it streams, for live UIs.

    `index` identifies the call within the response; `id` and `name` are set on the first
    fragment of a call; `arguments` is the piece of JSON text that just arrived.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the model may call: its name, what it does, and a JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    ```python
    Message(role="user", content="Tell me a story about a robot")
    ```

    `content` is text, or a sequence of `TextPart` / `ImagePart` for multi-modal input. An
    assistant message may carry the `tool_calls` it made; a `tool` message answers one of them
    and names it in `tool_call_id`.
    """

    role: Role
    content: str | Sequence[ContentPart] = ""
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: Sequence[ToolCall] = ()

    @property
    def text(self) -> str:
        """The text of the message, multi-modal parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask a model.

    ```python
    ChatRequest(messages=[Message(role="user", content="Tell me a story about a robot")])
    ```

    `model` overrides the provider's default model. `response_format` is passed as the vendor
    expects it for JSON output (e.g. `{"type": "json_object"}`). `metadata` is sent to vendors
    that accept it and otherwise ignored.
    """

    messages: Sequence[Message]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: Sequence[ToolDefinition] = ()
    stop: Sequence[str] = ()
    response_format: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    seed: int | None = None


class StopReason(enum.StrEnum):
    """Why the model stopped, mapped from each vendor's own value (kept in `raw_stop_reason`)."""

    END = "end"
    MAX_TOKENS = "max_tokens"
    TOOL_CALL = "tool_call"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, as the vendor reported them; None where it reported nothing.

    ```python
    response = await provider.chat(req)
    print(response.usage.input_tokens, response.usage.output_tokens)
    ```

    `input_tokens` counts every prompt token, `cached_tokens` (read from the vendor's prompt
    cache) and `cache_write_tokens` (written to it) included; `output_tokens` counts every
    generated token, `reasoning_tokens` (thinking) included. The parts are billed at their
    own rates, which is why they are kept apart. `raw` is the vendor's usage object as it
    arrived. `a + b` adds two usages (a run's totals; `raw` is not kept).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=_plus(self.input_tokens, other.input_tokens),
            output_tokens=_plus(self.output_tokens, other.output_tokens),
            total_tokens=_plus(self.total_tokens, other.total_tokens),
            reasoning_tokens=_plus(self.reasoning_tokens, other.reasoning_tokens),
            cached_tokens=_plus(self.cached_tokens, other.cached_tokens),
            cache_write_tokens=_plus(self.cache_write_tokens, other.cache_write_tokens),
        )

    def counts(self) -> dict[str, int]:
        """The counts the vendor reported, by field name (for JSON, logs and metrics)."""
        return {name: value for name in _COUNTS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> Usage:
        """The inverse of `counts`."""
        def count(name: str) -> int | None:
            value = counts.get(name)
            return None if value is None else int(value)

        return cls(input_tokens=count("input_tokens"), output_tokens=count("output_tokens"),
                   total_tokens=count("total_tokens"), reasoning_tokens=count("reasoning_tokens"),
                   cached_tokens=count("cached_tokens"),
                   cache_write_tokens=count("cache_write_tokens"))


_COUNTS = ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens", "cached_tokens",
           "cache_write_tokens")


def _plus(a: int | None, b: int | None) -> int | None:
    # A count neither side reported stays unreported, rather than becoming a false zero.
    if a is None:
        return b
    if b is None:
        return a
    return a + b


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A model's response, whole (`delta=False`) or one streamed chunk of it (`delta=True`).

    In a stream, `content` and `reasoning` are the text that just arrived; `tool_calls` holds
    each tool call exactly once, complete, in the chunk where it became complete, so that

    ```python
    tool_calls = []
    async for chunk in provider.stream_chat(req):
        tool_calls.extend(chunk.tool_calls)
    ```

    collects every call. `tool_call_deltas` carries the fragments as they arrive, for UIs.
    `usage`, `stop_reason` and `raw_stop_reason` are set on the last chunk.

    `refusal` is the model's refusal text (OpenAI's `refusal` deltas), kept out of `content`
    so that content asked for as JSON never holds prose; a response that carries one has
    `stop_reason` `CONTENT_FILTER` (the vendor's own value stays in `raw_stop_reason`).
    """

    content: str = ""
    id: str = ""
    role: Role = "assistant"
    model: str = ""
    reasoning: str = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_call_deltas: Sequence[ToolCallDelta] = ()
    usage: Usage | None = None
    stop_reason: StopReason | None = None
    raw_stop_reason: str | None = None
    delta: bool = False
    refusal: str = ""


class _ChunkTwin:
    """`ChatResponse`'s slots without the frozen `__setattr__`: a chunk is built as this.

    A frozen dataclass's `__init__` sets each of its 12 fields through `object.__setattr__`,
    which made building a chunk the largest single cost of chronos's own per-chunk work. A
    plain class with the same slots assigns them at full speed, and since the two layouts
    are identical, the instance may then become a `ChatResponse` by `__class__` assignment.
    """

    __slots__ = ChatResponse.__slots__


_new_twin = object.__new__


def _stream_chunk(
    content: str,
    id: str,
    model: str,
    reasoning: str,
    tool_calls: Sequence[ToolCall],
    tool_call_deltas: Sequence[ToolCallDelta],
    refusal: str,
) -> ChatResponse:
    """`ChatResponse(..., delta=True)` for a mid-stream chunk, several times faster.

    A function rather than `_ChunkTwin.__init__`: calling a class costs a second call (its
    `__init__`) on every chunk.
    """
    chunk: Any = _new_twin(_ChunkTwin)
    chunk.content = content
    chunk.id = id
    chunk.role = "assistant"
    chunk.model = model
    chunk.reasoning = reasoning
    chunk.tool_calls = tool_calls
    chunk.tool_call_deltas = tool_call_deltas
    chunk.usage = None
    chunk.stop_reason = None
    chunk.raw_stop_reason = None
    chunk.delta = True
    chunk.refusal = refusal
    chunk.__class__ = ChatResponse
    done: ChatResponse = chunk  # not `cast`: a call per chunk
    return done

"""The glue between model streaming and graph streaming: a node's model call, token by token.

This is the one place where `graph` meets `model`: it asks a `Provider` for a stream and turns
each chunk into a `token` event of the running graph (through the sink `chronos.stream.emit`
would call, so the event gets the node id, run id and sequence number like any other and
reaches the broker too).
`model` knows nothing of this module, and the runner knows nothing of providers.

A token event's `data` is a `MessageDelta`, a frozen slotted dataclass built by setting its
slots directly: the generated frozen `__init__` goes through `object.__setattr__` by name,
0.87 us for five fields against 0.44 us; the difference is a quarter of the runner's whole
token path (~1.7 us). Slots rather than a `__dict__` also mean one object fewer per token
for the garbage collector to walk while events sit in subscriber buffers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chronos.model import (
    ChatRequest,
    ChatResponse,
    Provider,
    StreamAccumulator,
    ToolCall,
    ToolCallDelta,
)
from chronos.stream import EventSink, current_sink

__all__ = ["MessageDelta", "stream_chat", "stream_chat_sync"]


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """What a model just streamed inside a node: the `data` of a `token` event.

    ```python
    async for evt in runner.stream(mode="messages"):
        if evt.type == "token":
            print(evt.data.content, end="", flush=True)
    ```

    `message_id` is the same for every delta of one model call, so a UI can group them into
    one message (a node may call a model more than once, parallel nodes at the same time).
    `content` and `reasoning` are the text that just arrived; `tool_call_deltas` are fragments
    of tool calls; `tool_calls` holds each tool call once, complete, when it completes. On a
    broker it is a JSON object with these keys.
    """

    message_id: str
    content: str = ""
    reasoning: str = ""
    tool_call_deltas: Sequence[ToolCallDelta] = ()
    tool_calls: Sequence[ToolCall] = ()


def _slot_setter(name: str) -> Callable[[MessageDelta, Any], None]:
    # The slot's own descriptor, which a frozen dataclass leaves usable from outside.
    setter: Callable[[MessageDelta, Any], None] = vars(MessageDelta)[name].__set__
    return setter


_new: Final = object.__new__
_set_id: Final = _slot_setter("message_id")
_set_content: Final = _slot_setter("content")
_set_reasoning: Final = _slot_setter("reasoning")
_set_fragments: Final = _slot_setter("tool_call_deltas")
_set_calls: Final = _slot_setter("tool_calls")


def _emit_chunk(emit: EventSink, message_id: str, chunk: ChatResponse) -> None:
    # Chunks with nothing to show (a role-only opener, a usage-only closer) make no event.
    if chunk.content or chunk.reasoning or chunk.tool_call_deltas or chunk.tool_calls:
        delta = _new(MessageDelta)
        _set_id(delta, message_id)
        _set_content(delta, chunk.content)
        _set_reasoning(delta, chunk.reasoning)
        _set_fragments(delta, chunk.tool_call_deltas)
        _set_calls(delta, chunk.tool_calls)
        emit("token", delta)


def _message_id(message_id: str | None) -> str:
    return message_id if message_id is not None else f"msg-{uuid.uuid4().hex[:16]}"


async def stream_chat(
    provider: Provider, request: ChatRequest, *, message_id: str | None = None
) -> ChatResponse:
    """Stream a model's response into the running graph and return the whole response.

    ```python
    async def chat_node(state):
        req = model.ChatRequest(messages=[model.Message(role="user", content=state["query"])])
        response = await graph.stream_chat(provider, req)
        return {"response": response.content}
    ```

    Call it inside a node. Every chunk with text, reasoning or tool-call fragments becomes a
    `token` event of the run, in order with the graph's own events: on `runner.stream()`
    (mode `messages` yields just these) and on the runner's broker, for UIs.

    Args:
        provider: any `model.Provider`.
        request: what to ask it.
        message_id: the id the events carry (`MessageDelta.message_id`); a fresh one if None.

    Returns:
        The accumulated response (`delta=False`), as `provider.chat` would return it.

    Raises:
        EmitOutsideRunError: called outside a running node.
        ProviderError: the provider failed; the events already sent stay in the stream.
    """
    mid = _message_id(message_id)
    acc = StreamAccumulator()
    add = acc.add
    # What `emit` would call, looked up once: a run's sink cannot change during a model call
    # (it still asks which node emits), and each token is spared `emit`'s call and lookup.
    sink = current_sink()
    # `async with` closes the provider's stream (an HTTP response, a llama.cpp worker) when
    # the node is cancelled or an event cannot be delivered, not when the GC gets to it.
    async with provider.stream_chat(request) as chunks:
        async for chunk in chunks:
            _emit_chunk(sink, mid, chunk)
            add(chunk)
    return acc.result()


def stream_chat_sync(
    provider: Provider, request: ChatRequest, *, message_id: str | None = None
) -> ChatResponse:
    """`stream_chat` for a sync node (which the runner runs in a worker thread).

    ```python
    def chat_node(state):
        response = graph.stream_chat_sync(provider, req)
        return {"response": response.content}
    ```
    """
    mid = _message_id(message_id)
    acc = StreamAccumulator()
    sink = current_sink()
    chunks = provider.stream_chat_sync(request)
    try:
        for chunk in chunks:
            _emit_chunk(sink, mid, chunk)
            acc.add(chunk)
    finally:
        # Leaving early (an error, EmitOutsideRunError) must stop generation at once.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return acc.result()

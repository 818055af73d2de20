"""The glue between model streaming and graph streaming: a node's model call, token by token.

This is the one place where `graph` meets `model`: it asks a `Provider` for a stream and turns
each chunk into a `token` event of the running graph (through the sink `chronos.graph.emit`
would call, so the event gets the node id, run id and sequence number like any other and
reaches the broker too).
`model` knows nothing of this module, and the runner knows nothing of providers.

A token event's `data` is a `MessageDelta`, a frozen slotted dataclass built by setting its
slots directly: the generated frozen `__init__` goes through `object.__setattr__` by name,
which costs about twice as much, a quarter of the runner's whole token path (BENCHMARKS.md,
graph execution). Slots rather than a `__dict__` also mean one object fewer per token
for the garbage collector to walk while events sit in subscriber buffers.

The call's `Usage` rides on the last delta only (the vendors send it on a closing chunk,
which made no event before), and is added to the run's totals once per call, not per token.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from chronos import _telemetry
from chronos.graph._emit import current_sink
from chronos.graph._events import Emitter
from chronos.graph._usage import count_call
from chronos.model import (
    ChatRequest,
    ChatResponse,
    Provider,
    StreamAccumulator,
    ToolCall,
    ToolCallDelta,
    Usage,
)

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
    of tool calls; `tool_calls` holds each tool call once, complete, when it completes.
    `usage` is None but on the call's last delta, which carries the tokens the vendor
    reported for the whole call (when it reported any; the delta's text may be empty). On a
    broker it is a JSON object with these keys.
    """

    message_id: str
    content: str = ""
    reasoning: str = ""
    tool_call_deltas: Sequence[ToolCallDelta] = ()
    tool_calls: Sequence[ToolCall] = ()
    usage: Usage | None = None


_set_class: Final = object.__setattr__  # the frozen MessageDelta refuses its own __setattr__


class _DeltaTwin:
    """`MessageDelta`'s slots without the frozen `__setattr__`; becomes one once filled."""

    __slots__ = MessageDelta.__slots__

    def __init__(self, message_id: str, chunk: ChatResponse, usage: Usage | None) -> None:
        self.message_id = message_id
        self.content = chunk.content
        self.reasoning = chunk.reasoning
        self.tool_call_deltas = chunk.tool_call_deltas
        self.tool_calls = chunk.tool_calls
        self.usage = usage
        _set_class(self, "__class__", MessageDelta)


_delta = cast(Callable[[str, ChatResponse, Usage | None], MessageDelta], _DeltaTwin)


def _emit_chunk(emit: Emitter, message_id: str, chunk: ChatResponse) -> bool:
    """Whether the chunk made a `token` event."""
    # A chunk with nothing to show (a role-only opener) makes no event; the usage-only closer
    # most vendors send does, as the call's last delta. A delta nobody takes is not built.
    if (chunk.content or chunk.reasoning or chunk.tool_call_deltas or chunk.tool_calls
            or chunk.usage is not None) and not emit.skip("token"):
        emit("token", _delta(message_id, chunk, chunk.usage))
        return True
    return False


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
    span = _telemetry.start_chat(provider, request)  # None unless tracing is on
    try:
        # `async with` closes the provider's stream (an HTTP response, a llama.cpp worker)
        # when the node is cancelled or an event cannot be delivered, not when the GC does.
        async with provider.stream_chat(request) as chunks:
            first = True
            async for chunk in chunks if span is None else span.watch(chunks):
                emitted = _emit_chunk(sink, mid, chunk)
                add(chunk)
                if emitted and first:
                    first = False
                    # The run's readers (a client's stream) take the first token before the
                    # run goes on: its time to first token is theirs (BENCHMARKS.md,
                    # "Thirteenth session").
                    await asyncio.sleep(0)
    except BaseException as exc:
        if span is not None:
            span.fail(exc)
        raise
    response = acc.result()
    count_call(provider, request, response)
    if span is not None:
        span.finish(response)
    return response


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
    span = _telemetry.start_chat(provider, request)
    chunks = provider.stream_chat_sync(request)
    try:
        for chunk in chunks if span is None else span.watch_sync(chunks):
            _emit_chunk(sink, mid, chunk)
            acc.add(chunk)
    except BaseException as exc:
        if span is not None:
            span.fail(exc)
        raise
    finally:
        # Leaving early (an error, EmitOutsideRunError) must stop generation at once.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    response = acc.result()
    count_call(provider, request, response)
    if span is not None:
        span.finish(response)
    return response

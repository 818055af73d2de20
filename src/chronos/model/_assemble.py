"""Sans-IO assembly: vendor fragments in, chronos chunks and whole responses out.

Why this module exists: every vendor streams tool calls differently. OpenAI-style servers send
`id` and `name` on a call's first fragment and then bare argument pieces keyed by `index`
(OpenRouter repeats `id` and `name` on every fragment; some servers send no id at all);
Gemini and Ollama send each call whole; Anthropic and the Responses API say explicitly when a
call ends. The guide's loop, `tool_calls.extend(chunk.tool_calls)`, is only correct if each
call appears exactly once, complete. `ChunkBuilder` is the single place that guarantees it:
a vendor translator reports what one decoded event contained, and the builder turns it into at
most one `ChatResponse(delta=True)`, releasing a tool call only once it is complete: when the
vendor says so, when a finish reason arrives, or when the stream ends. Usage and the stop
reason are held back and put on the last chunk.

`StreamAccumulator` / `accumulate` fold any chunk stream back into one `ChatResponse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Hashable, Iterator, Mapping
from typing import Any

import orjson

from chronos.model._types import (
    ChatResponse,
    StopReason,
    ToolCall,
    ToolCallDelta,
    Usage,
    _stream_chunk,
)

__all__ = ["ChunkBuilder", "StreamAccumulator", "ToolCallAssembler", "accumulate"]


class _PartialCall:
    __slots__ = ("arguments", "id", "index", "name", "signature")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []
        self.signature: str | None = None

    def finish(self) -> ToolCall:
        arguments = "".join(self.arguments)
        return ToolCall(
            id=self.id or f"call_{self.index}",
            name=self.name,
            # Vendors send "" or nothing for a call without arguments; ToolCall promises JSON.
            arguments=arguments if arguments.strip() else "{}",
            signature=self.signature,
        )


def _check_strings(*values: object) -> None:
    # Vendor JSON lands here unchecked; a value of another type must fail now, as a
    # malformed chunk, not later when a caller uses the finished response.
    for value in values:
        if value is not None and type(value) is not str:
            raise TypeError(f"expected a string, not {value!r}"[:200])


class ToolCallAssembler:
    """Build complete `ToolCall`s from fragments keyed by the vendor's index or id.

    ```python
    calls = ToolCallAssembler()
    calls.fragment(0, id="call_1", name="get_weather", arguments='{"city": ')
    calls.fragment(0, arguments='"Paris"}')
    calls.complete_all()
    calls.take()   # [ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]
    ```

    `id` and `name` count only the first time they are seen for a call, so vendors that repeat
    them on every fragment do not get them concatenated. A fragment whose key is `None`
    continues the most recent call. A fragment that reuses a key with a different id starts a
    new call. Calls without an id get `call_<n>`, `n` being the call's position in the response.
    """

    __slots__ = ("_completed", "_next_index", "_open")

    def __init__(self) -> None:
        self._open: dict[Hashable, _PartialCall] = {}
        self._completed: list[ToolCall] = []
        self._next_index = 0

    def fragment(
        self,
        key: Hashable,
        *,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
    ) -> ToolCallDelta:
        """Add one fragment of a streamed call; returns it as a `ToolCallDelta` for UIs.

        Raises:
            TypeError: `id`, `name` or `arguments` is not a string (a malformed chunk).
        """
        _check_strings(id, name, arguments)
        if key is None:
            key = next(reversed(self._open)) if self._open else 0
        call = self._open.get(key)
        if call is not None and id and call.id and id != call.id:
            self._completed.append(self._open.pop(key).finish())
            call = None
        if call is None:
            call = self._open[key] = _PartialCall(self._next_index)
            self._next_index += 1
        new_id: str | None = None
        new_name: str | None = None
        if id and not call.id:
            call.id = new_id = id
        if name and not call.name:
            call.name = new_name = name
        if arguments:
            call.arguments.append(arguments)
        return ToolCallDelta(call.index, new_id, new_name, arguments or "")

    def whole(
        self,
        *,
        id: str | None,
        name: str,
        arguments: str | Mapping[str, Any] | None,
        signature: str | None = None,
    ) -> ToolCallDelta:
        """Add a call that arrived complete in one piece (Gemini, Ollama); it is complete now.

        `signature`: the vendor's opaque token for the call (see `ToolCall.signature`).
        """
        _check_strings(id, name, None if isinstance(arguments, Mapping) else arguments, signature)
        call = _PartialCall(self._next_index)
        self._next_index += 1
        call.id = id or ""
        call.name = name
        call.signature = signature or None
        if isinstance(arguments, Mapping):
            call.arguments.append(orjson.dumps(arguments).decode())
        elif arguments:
            call.arguments.append(arguments)
        done = call.finish()
        self._completed.append(done)
        return ToolCallDelta(call.index, done.id, name, done.arguments)

    def complete(self, key: Hashable) -> None:
        """The vendor said the call under `key` is finished (e.g. a content block stopped)."""
        call = self._open.pop(key, None)
        if call is not None:
            self._completed.append(call.finish())

    def complete_all(self) -> None:
        """Every open call is finished (a finish reason arrived, or the stream ended)."""
        for call in self._open.values():
            self._completed.append(call.finish())
        self._open.clear()

    def take(self) -> tuple[ToolCall, ...]:
        """The calls completed since the last `take`, in the order they completed."""
        if not self._completed:
            return ()
        done = tuple(self._completed)
        self._completed = []
        return done

    @property
    def has_completed(self) -> bool:
        """Whether `take` would return something."""
        return bool(self._completed)


class ChunkBuilder:
    """The sink a vendor translator writes one decoded event into; builds the chunks.

    A translator calls `text`, `reasoning`, `refusal`, `tool_fragment`, `tool_call`, `usage`,
    `stop`,
    sets `id` / `model`, and says `end_stream()` (terminal event: stop reading) or `allow_end()`
    (the stream may now end without being truncated, e.g. after a finish reason). The provider
    base then calls `build()` once per event and `finish()` once at the end.
    """

    __slots__ = (
        "_content",
        "_deltas",
        "_raw_stop",
        "_reasoning",
        "_refusal",
        "_refused",
        "_stop",
        "_usage",
        "ended",
        "id",
        "may_end",
        "model",
        "tools",
    )

    def __init__(self) -> None:
        self.tools = ToolCallAssembler()
        self.id = ""
        self.model = ""
        self.ended = False  # the vendor's terminal event arrived: nothing more to read
        self.may_end = False  # an end of stream now would not be a truncation
        self._content = ""
        self._reasoning = ""
        self._refusal = ""
        self._refused = False
        self._deltas: list[ToolCallDelta] = []
        self._usage: Usage | None = None
        self._stop: StopReason | None = None
        self._raw_stop: str | None = None

    def text(self, text: str) -> None:
        """Assistant text that just arrived."""
        self._content += text

    def reasoning(self, text: str) -> None:
        """Reasoning ("thinking") text that just arrived, kept apart from the content."""
        self._reasoning += text

    def refusal(self, text: str) -> None:
        """Refusal text that just arrived (OpenAI's `refusal`), kept apart from the content.

        The response then ends with `StopReason.CONTENT_FILTER` where the vendor said it
        simply stopped: that is what a caller checking `stop_reason` needs to see.
        """
        if text:
            self._refusal += text
            self._refused = True

    def tool_fragment(
        self,
        key: Hashable,
        *,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
    ) -> None:
        """A fragment of a streamed tool call (see `ToolCallAssembler.fragment`)."""
        self._deltas.append(self.tools.fragment(key, id=id, name=name, arguments=arguments))

    def tool_call(
        self,
        *,
        id: str | None,
        name: str,
        arguments: str | Mapping[str, Any] | None,
        signature: str | None = None,
    ) -> None:
        """A tool call that arrived whole (`signature`: see `ToolCall.signature`)."""
        self._deltas.append(
            self.tools.whole(id=id, name=name, arguments=arguments, signature=signature)
        )

    def complete_tool(self, key: Hashable) -> None:
        """The vendor said the call under `key` is complete."""
        self.tools.complete(key)

    def usage(self, usage: Usage) -> None:
        """Token usage; the last one reported wins, and goes out on the last chunk."""
        for count in (usage.input_tokens, usage.output_tokens, usage.total_tokens):
            if count is not None and type(count) is not int:
                raise TypeError(f"token counts must be integers, not {count!r}")
        self._usage = usage

    def stop(self, raw: str, mapped: StopReason) -> None:
        """The vendor's stop reason: completes open tool calls; goes out on the last chunk."""
        _check_strings(raw)
        self._raw_stop = raw
        self._stop = mapped
        self.may_end = True
        self.tools.complete_all()

    def end_stream(self) -> None:
        """The vendor's terminal event arrived (`[DONE]`, `message_stop`, `done: true`)."""
        self.ended = True
        self.may_end = True

    def allow_end(self) -> None:
        """From now on an end of stream is a normal end, not a truncation."""
        self.may_end = True

    def build(self) -> ChatResponse | None:
        """The chunk for what was reported since the last call, or None if nothing visible."""
        content = self._content
        reasoning = self._reasoning
        refusal = self._refusal
        deltas = self._deltas
        completed = self.tools._completed
        if not (content or reasoning or deltas or completed or refusal):
            return None
        self._content = self._reasoning = self._refusal = ""
        if deltas:
            self._deltas = []
        return _stream_chunk(
            content,
            self.id,
            self.model,
            reasoning,
            self.tools.take() if completed else (),
            tuple(deltas) if deltas else (),
            refusal,
        )

    def chunks(
        self, events: list[Any], translate: Callable[[Any, ChunkBuilder], None]
    ) -> Iterator[ChatResponse]:
        """`translate(event, self)` and `build()` for each of `events` (one network read's),
        yielding the chunks, up to the terminal event.

        The loop the provider base would otherwise run per event in interpreted code, run
        here compiled. A generator rather than a list of the read's chunks: each chunk is
        out before the next event is translated (an error comes after the chunks before
        it), and is freed once the consumer is done with it (a read's worth of chunks held
        at once kept the garbage collector busy).
        """
        for event in events:
            translate(event, self)
            chunk = self.build()
            if chunk is not None:
                yield chunk
            if self.ended:
                return

    def finish(self) -> ChatResponse:
        """The last chunk: completes every open call, carries usage and the stop reason."""
        self.tools.complete_all()
        last = self.build()
        stop = self._stop
        if self._refused and stop in (None, StopReason.END):
            stop = StopReason.CONTENT_FILTER
        return ChatResponse(
            content=last.content if last else "",
            id=self.id,
            model=self.model,
            reasoning=last.reasoning if last else "",
            tool_calls=last.tool_calls if last else (),
            tool_call_deltas=last.tool_call_deltas if last else (),
            usage=self._usage,
            stop_reason=stop,
            raw_stop_reason=self._raw_stop,
            delta=True,
            refusal=last.refusal if last else "",
        )


class StreamAccumulator:
    """Fold streamed chunks into the whole response.

    ```python
    acc = StreamAccumulator()
    async for chunk in provider.stream_chat(req):
        print(chunk.content, end="")
        acc.add(chunk)
    response = acc.result()   # ChatResponse(delta=False), as chat() returns it
    ```
    """

    __slots__ = ("_content", "_id", "_model", "_raw_stop", "_reasoning", "_refusal", "_stop",
                 "_tools", "_usage")

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._tools: list[ToolCall] = []
        self._id = ""
        self._model = ""
        self._usage: Usage | None = None
        self._stop: StopReason | None = None
        self._raw_stop: str | None = None

    def add(self, chunk: ChatResponse) -> None:
        """Take one chunk into account."""
        if chunk.content:
            self._content.append(chunk.content)
        if chunk.reasoning:
            self._reasoning.append(chunk.reasoning)
        if chunk.refusal:
            self._refusal.append(chunk.refusal)
        if chunk.tool_calls:
            self._tools.extend(chunk.tool_calls)
        if chunk.id:
            self._id = chunk.id
        if chunk.model:
            self._model = chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.stop_reason is not None:
            self._stop = chunk.stop_reason
            self._raw_stop = chunk.raw_stop_reason

    def result(self) -> ChatResponse:
        """The response so far, whole (`delta=False`)."""
        return ChatResponse(
            content="".join(self._content),
            id=self._id,
            model=self._model,
            reasoning="".join(self._reasoning),
            tool_calls=tuple(self._tools),
            usage=self._usage,
            stop_reason=self._stop,
            raw_stop_reason=self._raw_stop,
            delta=False,
            refusal="".join(self._refusal),
        )


async def accumulate(stream: AsyncIterable[ChatResponse]) -> ChatResponse:
    """Consume a chunk stream and return the whole response (`delta=False`).

    ```python
    response = await model.accumulate(provider.stream_chat(req))
    ```

    If `stream` is a provider stream it is closed on the way out, also on error.
    """
    acc = StreamAccumulator()
    try:
        async for chunk in stream:
            acc.add(chunk)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    return acc.result()

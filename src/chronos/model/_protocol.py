"""What a provider is: the `Provider` protocol, `ChatStream`, and `BaseProvider`.

`ChatStream` is the object every `stream_chat` returns: an async iterator of chunks and an
async context manager, so an early exit closes what is underneath (an HTTP response, a
llama.cpp worker) at once instead of when the garbage collector gets to it. `BaseProvider`
writes `chat`, `stream_chat` and their sync twins once, over a single `_stream` generator.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import TracebackType
from typing import Protocol, TypeVar, cast, runtime_checkable

from chronos import _calls, _telemetry
from chronos._sync import iterate_sync, run_sync
from chronos.model._assemble import accumulate
from chronos.model._types import ChatRequest, ChatResponse

__all__ = ["BaseProvider", "ChatStream", "Provider"]

_P = TypeVar("_P", bound="BaseProvider")


@runtime_checkable
class Provider(Protocol):
    """What chronos needs from a model provider; implement it to bring your own.

    ```python
    async for chunk in provider.stream_chat(req):
        print(chunk.content, end="", flush=True)
    ```
    """

    @property
    def name(self) -> str:
        """The vendor, e.g. "openai"."""
        ...

    @property
    def model(self) -> str:
        """The default model of this provider."""
        ...

    async def chat(self, req: ChatRequest) -> ChatResponse:
        """The whole response (`delta=False`)."""
        ...

    def stream_chat(self, req: ChatRequest) -> ChatStream:
        """The response as it is generated: chunks with `delta=True`."""
        ...

    def chat_sync(self, req: ChatRequest) -> ChatResponse:
        """`chat` for synchronous code."""
        ...

    def stream_chat_sync(self, req: ChatRequest) -> Iterator[ChatResponse]:
        """`stream_chat` for synchronous code."""
        ...


class ChatStream:
    """A streamed response: an async iterator of chunks and an async context manager.

    ```python
    async for chunk in provider.stream_chat(req):
        print(chunk.content, end="")

    async with provider.stream_chat(req) as stream:   # closes the response on early exit
        async for chunk in stream:
            if done(chunk):
                break
    ```

    Nothing is sent until the first chunk is asked for. `aclose()` is idempotent; leaving the
    loop by exhaustion, error, `break` (with `async with`) or cancellation closes the HTTP
    response underneath.
    """

    __slots__ = ("_chunks",)

    def __init__(self, chunks: AsyncGenerator[ChatResponse, None]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[ChatResponse]:
        # The generator itself: no extra await per chunk on the hot path.
        return self._chunks

    async def __anext__(self) -> ChatResponse:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and close the response; safe to call more than once."""
        await self._chunks.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class BaseProvider(abc.ABC):
    """The provider interface written once over `_stream`; subclass it to add a provider.

    A subclass implements `_stream(req)`, an async generator of chunks (`delta=True`), and
    `aclose()`; `chat` accumulates the stream, so the two always agree.
    """

    @abc.abstractmethod
    def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
        """Generate the chunks of one response; closing the generator ends the work."""

    async def chat(self, req: ChatRequest) -> ChatResponse:
        """The whole response (`delta=False`), equal to `accumulate(stream_chat(req))`.

        A model call of its own: traced (a `chat {model}` span) when tracing is on, and
        inside a graph node its usage is counted in the run's, as `graph.stream_chat`'s is.
        """
        me = cast(Provider, self)  # a subclass has the `name` and `model` a span needs
        span = _telemetry.start_chat(me, req)
        if span is None:
            response = await accumulate(self.stream_chat(req))
        else:
            with span:
                response = await accumulate(span.watch(self.stream_chat(req)))
            span.finish(response)
        return _calls.counted(me, req, response)

    def stream_chat(self, req: ChatRequest) -> ChatStream:
        """Stream the response: chunks with `delta=True`; see `ChatStream`.

        Nothing starts until the first chunk is asked for; the last chunk carries `usage`
        and `stop_reason`.
        """
        return ChatStream(self._stream(req))

    def chat_sync(self, req: ChatRequest) -> ChatResponse:
        """`chat` for synchronous code."""
        # Traced and counted here, in the caller's context (a sync node's thread), not on
        # the bridge loop that streams the response.
        me = cast(Provider, self)
        span = _telemetry.start_chat(me, req)
        if span is None:
            response = run_sync(lambda: accumulate(self.stream_chat(req)))
        else:
            with span:
                response = run_sync(lambda: accumulate(span.watch(self.stream_chat(req))))
            span.finish(response)
        return _calls.counted(me, req, response)

    def stream_chat_sync(self, req: ChatRequest) -> Iterator[ChatResponse]:
        """`stream_chat` for synchronous code; leaving the loop early ends the stream."""
        return iterate_sync(lambda: self.stream_chat(req))

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the provider holds (HTTP clients, a loaded model)."""

    async def __aenter__(self: _P) -> _P:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

"""What a provider is, for users who bring their own: the `Provider` protocol and `ChatStream`.

`ChatStream` is the object every `stream_chat` returns: an async iterator of chunks and an
async context manager, so an early exit closes what is underneath (an HTTP response, a
llama.cpp worker) at once instead of when the garbage collector gets to it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import TracebackType
from typing import Protocol, runtime_checkable

from chronos.model._types import ChatRequest, ChatResponse

__all__ = ["ChatStream", "Provider"]


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

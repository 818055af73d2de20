"""A provider that tries several providers in turn, until one starts answering.

```python
from chronos.model.fallback import FallbackProvider

provider = FallbackProvider(AnthropicProvider("claude-sonnet-4-5"), OpenAIProvider("gpt-4o"))
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

The next provider is tried only when the current one fails before its first chunk
(unreachable, HTTP error, timeout waiting for the response). Once a chunk has been delivered
the caller has started using that answer, so a later failure is raised as it is, never
papered over by another provider's output: one response never mixes two models.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

from chronos.errors import ConfigurationError, ProviderError
from chronos.model._protocol import BaseProvider, Provider
from chronos.model._types import ChatRequest, ChatResponse

__all__ = ["FallbackProvider"]

_DEFAULT_FALLBACK_ON: Final = (ProviderError,)


class FallbackProvider(BaseProvider):
    """Stream from the first provider that starts answering.

    ```python
    provider = FallbackProvider(primary, backup)
    response = await provider.chat(req)
    ```

    Args:
        *providers: tried in this order; each keeps its own retries, which run first.
        fallback_on: the errors that move on to the next provider when raised before the
            first chunk (default: every `ProviderError`). Anything else propagates at once.

    When every provider fails, the last one's error is raised; the earlier ones are chained
    to it as `__context__`. `name` is "fallback"; `model` is the first provider's model.
    """

    name = "fallback"

    def __init__(
        self,
        *providers: Provider,
        fallback_on: tuple[type[BaseException], ...] = _DEFAULT_FALLBACK_ON,
    ) -> None:
        if not providers:
            raise ConfigurationError("FallbackProvider needs at least one provider")
        self.providers = providers
        self.fallback_on = fallback_on

    @property
    def model(self) -> str:
        """The first provider's default model."""
        return self.providers[0].model

    def __repr__(self) -> str:
        return f"FallbackProvider({', '.join(repr(p) for p in self.providers)})"

    async def aclose(self) -> None:
        """Close every provider that can be closed."""
        for provider in self.providers:
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
        failure: BaseException | None = None
        for provider in self.providers:
            stream = provider.stream_chat(req)
            try:
                try:
                    first = await stream.__anext__()
                except StopAsyncIteration:
                    return
                except self.fallback_on as exc:
                    if failure is not None:
                        exc.__context__ = failure  # shown in the traceback if all fail
                    failure = exc
                    continue
                # Committed to this provider from here on: its errors are the caller's.
                yield first
                async for chunk in stream:
                    yield chunk
                return
            finally:
                await stream.aclose()
        assert failure is not None
        raise failure

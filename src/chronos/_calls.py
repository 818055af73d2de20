"""Who counts a whole-response model call (`provider.chat`, `chat_sync`) made in this context.

`graph.stream_chat` counts the calls it streams itself. A node may instead call
`provider.chat()`, which lives in `model`, and `model` knows nothing of runs: a run names
here, for the nodes it runs, the counter that adds a call's usage to its totals under the
node that made it, and `BaseProvider` reports each whole response to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chronos.model import ChatRequest, ChatResponse, Provider

__all__ = ["CallCounter", "counted", "counting"]

CallCounter = Callable[["Provider", "ChatRequest", "ChatResponse"], None]

_COUNTER: ContextVar[CallCounter | None] = ContextVar("chronos_call_counter", default=None)


@contextlib.contextmanager
def counting(counter: CallCounter) -> Iterator[None]:
    """Make `counter` the one told of whole-response calls, in this context (a run's)."""
    token = _COUNTER.set(counter)
    try:
        yield
    finally:
        _COUNTER.reset(token)


def counted(provider: Provider, request: ChatRequest, response: ChatResponse) -> ChatResponse:
    """`response`, once the counter of this context (if any) has counted it."""
    counter = _COUNTER.get()
    if counter is not None:
        counter(provider, request, response)
    return response

"""Who counts a whole-response model call (`provider.chat`, `chat_sync`) made in this context.

`graph.stream_chat` counts the calls it streams itself. A node may instead call
`provider.chat()`, which lives in `model`, and `model` knows nothing of runs: a run names
here, for the nodes it runs, the counter that adds a call's usage to its totals under the
node that made it, and `BaseProvider` reports each whole response to it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chronos.model import ChatRequest, ChatResponse, Provider

__all__ = ["CallCounter", "counted", "counting"]

CallCounter = Callable[["Provider", "ChatRequest", "ChatResponse"], None]

_COUNTER: ContextVar[CallCounter | None] = ContextVar("chronos_call_counter", default=None)


def counting(counter: CallCounter) -> _Counting:
    """Make `counter` the one told of whole-response calls, in this context (a run's):
    `with counting(counter): ...`."""
    return _Counting(counter)


class _Counting:
    """`counting`: a class, not a generator context manager, as every run enters one."""

    __slots__ = ("_counter", "_token")

    def __init__(self, counter: CallCounter) -> None:
        self._counter = counter
        self._token: Token[CallCounter | None] | None = None

    def __enter__(self) -> None:
        self._token = _COUNTER.set(self._counter)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _COUNTER.reset(self._token)


def counted(provider: Provider, request: ChatRequest, response: ChatResponse) -> ChatResponse:
    """`response`, once the counter of this context (if any) has counted it."""
    counter = _COUNTER.get()
    if counter is not None:
        counter(provider, request, response)
    return response

"""`RetryPolicy`: how often, and after how long, a failing node is tried again.

The delays are computed here, without I/O, so the policy can be tested on its own; the run
loop sleeps them, and announces every failed attempt as a `retry` event before it does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["RetryPolicy"]

# Programming errors: trying again cannot help (LangGraph's default list, as its users expect).
_NOT_RETRIED: Final = (ValueError, TypeError, ArithmeticError, ImportError, LookupError,
                       NameError, SyntaxError, RuntimeError, ReferenceError, StopIteration,
                       StopAsyncIteration, OSError)

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""Which failures are retried: exception classes, or a predicate on the exception."""


def _default_retry_on(exc: BaseException) -> bool:
    # ConnectionError and TimeoutError are OSErrors, yet exactly what a retry is for.
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return not isinstance(exc, _NOT_RETRIED)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Try a failing node again: `max_attempts` in all, waiting longer after each failure.

    ```python
    g.add_node("fetch", fetch, retry=graph.RetryPolicy(max_attempts=5, retry_on=httpx.HTTPError),
               timeout=10.0)
    ```

    The wait after the n-th failure is `initial_interval * backoff ** (n - 1)` seconds, at
    most `max_interval`, plus up to a second of random `jitter`. By default every exception
    is retried except programming errors (`ValueError`, `TypeError`, `KeyError`...); a
    node's `timeout` counts as a retryable failure.
    """

    max_attempts: int = 3
    initial_interval: float = 0.5
    backoff: float = 2.0
    max_interval: float = 128.0
    jitter: bool = True
    retry_on: RetryOn = _default_retry_on

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_interval < 0 or self.backoff < 1 or self.max_interval < 0:
            raise ValueError("intervals must be >= 0 and backoff >= 1")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether the `attempt`-th attempt (from 1), which raised `exc`, is followed by another."""
        if attempt >= self.max_attempts:
            return False
        retry_on = self.retry_on
        if isinstance(retry_on, (type, tuple)):
            return isinstance(exc, retry_on)
        return bool(retry_on(exc))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failed attempt (from 1)."""
        wait = min(self.max_interval, self.initial_interval * self.backoff ** (attempt - 1))
        return wait + (random.random() if self.jitter else 0.0)

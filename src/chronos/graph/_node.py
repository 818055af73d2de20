"""One node function called for one task: its input, its retries, its timeout, its interrupt.

Kept apart from the run loop because everything here concerns a single call: the loop only
sees the update that came back, or `Interrupted` when the node asked a question.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chronos._telemetry import RunTrace
from chronos.errors import GraphError, NodeError, NodeTimeoutError
from chronos.graph._builder import NodeSpec
from chronos.graph._events import EventHub
from chronos.graph._interrupt import NodeInterrupted, answering, reset_answers
from chronos.graph._plan import normalize_update

__all__ = ["Interrupted", "call_function"]


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A task that called `interrupt(value)` without an answer: its `index`-th call."""

    value: Any
    index: int


async def call_function(
    hub: EventHub,
    spec: NodeSpec,
    arg: Mapping[str, Any],
    answers: tuple[Any, ...],
    path: tuple[str, ...],
    trace: RunTrace | None = None,
) -> Mapping[str, Any] | Interrupted:
    """Call the node on a copy of `arg` until an attempt succeeds or may not be retried.

    `answers` are what its `interrupt()` calls return, in order, before one pauses it. With
    a `trace`, each attempt is a span of its own.

    Raises:
        NodeError: the last attempt failed (its exception is the cause).
    """
    attempt = 1
    while True:
        given = dict(arg)  # each attempt may change its copy freely
        token = answering(answers)
        span = None if trace is None else trace.attempt(spec.id, attempt, path)
        error: BaseException | None = None  # how the attempt ended, for its span
        try:
            if spec.is_async and spec.timeout is None:  # the common case, one frame less
                result = await spec.function(given)  # type: ignore[misc]
            else:
                result = await _attempt(spec, given)
            return normalize_update(spec.id, given, arg, result)
        except NodeInterrupted as asked:
            return Interrupted(asked.value, asked.index)
        except NodeTimeoutError as exc:
            failure: Exception = exc
            error = exc
        except GraphError as exc:
            error = exc
            raise
        except Exception as exc:
            error = failure = exc
        except BaseException as exc:  # cancelled: the attempt's span says so
            error = exc
            raise
        finally:
            reset_answers(token)
            if span is not None:
                span.end(error)
        policy = spec.retry
        if policy is None or not policy.should_retry(failure, attempt):
            raise NodeError(f"node {spec.id!r} failed: {failure!r}", node_id=spec.id,
                            run_id=hub.run_id) from failure
        delay = policy.delay(attempt)
        if hub.observed():
            hub.publish("retry", spec.id, error=repr(failure), path=path,
                        data={"attempt": attempt, "max_attempts": policy.max_attempts,
                              "delay": delay})
        await asyncio.sleep(delay)
        attempt += 1


async def _attempt(spec: NodeSpec, given: dict[str, Any]) -> Any:
    function = spec.function
    if function is None:
        return None
    if spec.inline:  # on the loop, and untimed: compile() refuses a timeout here
        result = function(given)
        return await result if inspect.isawaitable(result) else result
    if spec.timeout is None:
        if spec.is_async:
            return await function(given)  # type: ignore[misc]
        return await asyncio.to_thread(function, given)  # copies the emit sink
    call = function(given) if spec.is_async else asyncio.to_thread(function, given)
    try:
        async with asyncio.timeout(spec.timeout) as deadline:
            return await call  # type: ignore[misc]
    except TimeoutError:
        if not deadline.expired():
            raise  # the node's own TimeoutError
        # A sync node's thread cannot be stopped: it finishes in the background, unheard.
        raise NodeTimeoutError(spec.id, spec.timeout) from None

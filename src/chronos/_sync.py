"""The one bridge from synchronous code to chronos's async core.

Every `*_sync` twin (`chat_sync`, `stream_chat_sync`, `run_sync`, ...) goes through here, so
the logic exists once, async. Calls run on a private event loop in a daemon thread, started on
first use and shared by the process; this also works when the caller is itself inside a running
event loop (a sync node executed by a worker thread, a Jupyter cell), where `asyncio.run` fails.

An async iterator is driven by ONE task on that loop from start to finish, never by a fresh
task per item: async generators that hold cancel scopes or task groups (httpx, anyio) must be
entered and exited in the same task, and stepping them from different tasks breaks that. The
task hands items to the calling thread through a queue bounded by credits: it waits for credit
before producing more, so a slow sync consumer never makes it buffer without limit. Leaving the
sync loop early (break, exception, garbage collection) cancels the task, which closes the async
iterator and whatever it holds open (an HTTP response, a subscription).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Generator
from typing import Any, Final, TypeVar

__all__ = ["iterate_sync", "run_sync"]

T = TypeVar("T")

_CAPACITY: Final = 64

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _bridge_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="chronos-sync-bridge", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(make_awaitable: Callable[[], Awaitable[T]]) -> T:
    """Run an awaitable on the bridge loop and block until it is done.

    A `KeyboardInterrupt` or other exception in the calling thread cancels the work.
    """

    async def _main() -> T:
        return await make_awaitable()

    future = asyncio.run_coroutine_threadsafe(_main(), _bridge_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def iterate_sync(make_iterable: Callable[[], AsyncIterable[T]]) -> Generator[T, None, None]:
    """Iterate an async iterable from synchronous code, one task driving it throughout."""
    loop = _bridge_loop()
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()
    credits_ready = threading.Event()
    state: dict[str, Any] = {}

    async def _pump() -> None:
        credit = asyncio.Semaphore(_CAPACITY)
        state["credit"] = credit
        credits_ready.set()
        error: BaseException | None = None
        iterable = make_iterable()
        try:
            async for item in iterable:
                await credit.acquire()
                items.put(item)
        except asyncio.CancelledError:
            return
        except BaseException as exc:
            error = exc
        finally:
            # `async for` does not close the iterator when it stops early; closing it here,
            # in the task that iterated it, releases what it holds (a response, a thread).
            aclose = getattr(iterable, "aclose", None)
            if aclose is not None:
                await aclose()
        items.put(_End(error))

    def _give_back(count: int) -> None:
        for _ in range(count):
            state["credit"].release()

    task_future = asyncio.run_coroutine_threadsafe(_pump(), loop)
    credits_ready.wait()
    taken = 0
    try:
        while True:
            item = items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            taken += 1
            if taken >= _CAPACITY // 2:
                loop.call_soon_threadsafe(_give_back, taken)
                taken = 0
            yield item
    finally:
        if not task_future.done():
            task_future.cancel()
            # Wait for the iterator's own cleanup (closing a response) before returning.
            with contextlib.suppress(BaseException):
                task_future.result(timeout=5)

"""Hand chunks from a worker thread that generates them to the event loop that reads them.

Why this module exists: an in-process model (llama.cpp) generates synchronously, so it runs
in a thread, and the thread must neither outrun a slow reader nor outlive a reader that left.
`ThreadHandoff` bounds the chunks in flight with credits (the thread takes one before sending,
the reader gives it back on taking one), so a reader that stops reading stops generation; a
reader that leaves cancels, which wakes the thread wherever it waits. `Gate` lets one
generation at a time use a model, and its wait is cancellable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Generic, TypeVar

__all__ = ["End", "Gate", "ThreadHandoff"]

T = TypeVar("T")


class Gate:
    """One generation at a time per model (a llama.cpp context is not thread-safe).

    Waiting is cancellable: `wake()` makes waiters re-check their cancel flag, so a stream
    closed while queued behind another generation does not wait for that one to finish.
    A plain lock cannot do that: its waiters only wake when it is released.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._busy = False

    def enter(self, cancelled: threading.Event) -> bool:
        """Wait for the model to be free and take it; False (not taken) once cancelled."""
        with self._condition:
            while self._busy and not cancelled.is_set():
                self._condition.wait()
            if cancelled.is_set():
                return False
            self._busy = True
            return True

    def leave(self) -> None:
        """Give the model back."""
        with self._condition:
            self._busy = False
            self._condition.notify_all()

    def wake(self) -> None:
        """Make every waiter check its cancel flag again."""
        with self._condition:
            self._condition.notify_all()


class End:
    """The last item a thread sends: it has finished, with `error` if it failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ThreadHandoff(Generic[T]):
    """The hand-off between one producing thread and the event loop that reads its items.

    The thread holds at most `capacity` unread items. It ends by calling `end()`, always, and
    the reader knows it is done when it receives the `End`. Keep the thread from referencing
    the reader's stream, so that a stream dropped without being closed is finalised (and its
    `finally` cancels the thread).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, gate: Gate) -> None:
        self._loop = loop
        self._gate = gate
        # Unbounded on purpose: the credits bound it, and the thread must never block on it.
        self._queue: asyncio.Queue[T | End] = asyncio.Queue()
        self._credits = threading.Semaphore(capacity)
        self.cancelled = threading.Event()

    # --- the generating thread -----------------------------------------------------------

    def send(self, item: T) -> bool:
        """Block until the reader has room; False if the reader has gone."""
        self._credits.acquire()
        if self.cancelled.is_set():
            return False
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        return True

    def end(self, error: BaseException | None) -> None:
        """Say the thread has finished (call it last, always, also after `send` was False)."""
        # A RuntimeError here means the loop is closed: nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, End(error))

    # --- the event loop ------------------------------------------------------------------

    async def receive(self) -> T | End:
        """The next item; giving it back a credit lets the thread produce one more."""
        item = await self._queue.get()
        self._credits.release()
        return item

    def cancel(self) -> None:
        """The reader has gone: make the thread stop wherever it waits."""
        self.cancelled.set()
        self._credits.release()  # a thread waiting for room wakes up and sees the flag
        self._gate.wake()  # a thread waiting for the model does too

    async def wait_ended(self) -> None:
        """Wait for the thread's `End`, dropping what it sent before."""
        while not isinstance(await self._queue.get(), End):
            pass

"""Hand chunks from a worker thread that generates them to the event loop that reads them.

Why this module exists: an in-process model (llama.cpp) generates synchronously, so it runs
in a thread, and the thread must neither outrun a slow reader nor outlive a reader that left.
`ThreadHandoff` bounds the chunks in flight with credits (the thread takes one before sending,
the reader gives it back on taking one), so a reader that stops reading stops generation; a
reader that leaves cancels, which wakes the thread wherever it waits. `Gate` lets one
generation at a time use a model, and its wait is cancellable too. `Workers` keeps the
threads between generations: starting one is on the way to every response's first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["End", "Gate", "ThreadHandoff", "Workers"]

T = TypeVar("T")
_IDLE: Final = "-idle"  # the suffix of a kept thread's name while it waits for a job


class _Kept:
    """A kept thread's mailbox: one job at a time, and a receipt the giver waits for."""

    def __init__(self) -> None:
        self.job: Callable[[], None] | None = None
        self._given = threading.Lock()
        self._given.acquire()
        self._taken = threading.Lock()
        self._taken.acquire()

    def give(self, job: Callable[[], None] | None) -> None:
        self.job = job
        self._given.release()
        self._taken.acquire()

    def take(self, timeout: float) -> bool:
        """Wait for a job (then `self.job`, None to end); False if none came in time."""
        if not self._given.acquire(timeout=timeout):
            return False
        self._taken.release()
        return True


class Workers:
    """Threads for generations, each kept after its generation ends for the next one.

    `Thread.start` holds up the event loop until the new thread runs, 0.2-0.3 ms measured on
    a served run's way to its first token; a kept thread is handed its job instead. The
    caller still waits until the thread has taken the job, as `start` does: the thread then
    reaches the model's call (which lets go of the GIL) before the loop goes on. A thread
    left idle for `idle` seconds ends, and `close()` ends those idle now; a thread waiting
    for a job is named with an `-idle` suffix, so only generations carry the name. A forked
    child starts afresh: its parent's threads are not in it.
    """

    def __init__(self, name: str, idle: float = 60.0) -> None:
        self._name = name
        self._idle_seconds = idle
        self._forked()

    def _forked(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the parent's may have been held at the fork
        self._idle: list[_Kept] = []

    def run(self, job: Callable[[], None]) -> None:
        """Run `job` on an idle thread, or on a new one if none is idle."""
        if self._pid != os.getpid():
            self._forked()
        with self._lock:
            kept = self._idle.pop() if self._idle else None
        if kept is None:
            worker = threading.Thread(
                target=self._serve,
                args=([job],),  # a list it empties: `Thread` holds its arguments till it ends
                name=self._name,
                daemon=True,  # never keeps the interpreter alive; streams stop it before that
            )
            worker.start()
        else:
            kept.give(job)

    def close(self) -> None:
        """End the threads idle now (one still finishing a job ends once idle for `idle` s)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for kept in idle:
            kept.give(None)

    def _serve(self, first: list[Callable[[], None]]) -> None:
        kept = _Kept()
        me = threading.current_thread()
        job: Callable[[], None] | None = first.pop()
        while job is not None:
            job()
            job = None  # nothing of a finished generation stays referenced while idle
            me.name = self._name + _IDLE
            with self._lock:
                self._idle.append(kept)
            if not kept.take(self._idle_seconds):
                with self._lock:
                    if kept in self._idle:  # nobody picked it meanwhile: end
                        self._idle.remove(kept)
                        return
                kept.take(-1)  # picked just now: its job is on the way
            job, kept.job = kept.job, None
            me.name = self._name


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

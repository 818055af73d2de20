"""`Workers`: the threads an in-process model's generations run on, kept between them."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import weakref

from chronos.model._handoff import Workers


def wait_until(condition: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def test_a_job_after_another_runs_on_the_same_thread() -> None:
    name = "worker-reused"
    workers = Workers(name)
    ran: list[int] = []
    workers.run(lambda: ran.append(threading.get_ident()))
    wait_until(lambda: named(name + "-idle"))
    workers.run(lambda: ran.append(threading.get_ident()))
    wait_until(lambda: len(ran) == 2)
    assert ran[0] == ran[1]
    workers.close()


def test_jobs_at_once_run_on_threads_of_their_own() -> None:
    name = "worker-at-once"
    workers = Workers(name)
    release = threading.Event()
    ran: list[int] = []

    def job() -> None:
        ran.append(threading.get_ident())
        release.wait(10)

    workers.run(job)
    workers.run(job)
    wait_until(lambda: len(ran) == 2)
    assert ran[0] != ran[1]
    assert len(named(name)) == 2  # both named as working while their jobs run
    release.set()
    wait_until(lambda: len(named(name + "-idle")) == 2)
    workers.close()


def test_close_ends_the_idle_threads() -> None:
    name = "worker-closed"
    workers = Workers(name)
    workers.run(lambda: None)
    wait_until(lambda: named(name + "-idle"))
    (thread,) = named(name + "-idle")
    workers.close()
    thread.join(10)
    assert not thread.is_alive()


def test_a_thread_idle_for_long_enough_ends() -> None:
    name = "worker-idle-ends"
    workers = Workers(name, idle=0.05)
    workers.run(lambda: None)
    wait_until(lambda: not named(name) and not named(name + "-idle"))
    ran = threading.Event()
    workers.run(ran.set)  # a new thread then
    assert ran.wait(10)
    workers.close()


def test_an_idle_thread_holds_nothing_of_its_last_job() -> None:
    class Generation:
        pass

    name = "worker-forgets"
    workers = Workers(name)
    generation = Generation()
    gone = weakref.ref(generation)
    workers.run(lambda held=generation: None)  # type: ignore[misc]
    del generation
    wait_until(lambda: named(name + "-idle"))
    gc.collect()
    assert gone() is None
    workers.close()


def test_a_forked_child_runs_its_jobs_on_threads_of_its_own() -> None:
    name = "worker-forked"
    workers = Workers(name)
    workers.run(lambda: None)
    wait_until(lambda: named(name + "-idle"))  # a thread the child will not have
    child = os.fork()
    if child == 0:  # handing the job to the parent's idle thread would wait for ever
        ran = threading.Event()
        workers.run(ran.set)
        os._exit(0 if ran.wait(5) else 1)
    deadline = time.monotonic() + 10
    while (ended := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if ended[0] == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert ended[0] == child
    assert os.waitstatus_to_exitcode(ended[1]) == 0
    workers.close()

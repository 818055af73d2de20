"""The in-process broker's per-topic frame log (`_replay.FrameLog`): a deque of bytes's
behaviour, in storage the garbage collector does not visit frame by frame."""

from __future__ import annotations

import gc
from collections import deque

import pytest

from chronos.stream import Broker, Event
from chronos.stream._replay import FrameLog


def _frame(n: int) -> bytes:
    return b"id: 1-%d\ndata: %b\n\n" % (n, b"x" * (n % 7))


def test_it_holds_what_a_deque_holds_through_appends_and_evictions() -> None:
    log, model = FrameLog(), deque[bytes]()
    for n in range(1_000):
        log.append(_frame(n))
        model.append(_frame(n))
        if n % 3 == 0:  # evicts faster than it appends at times, past the compaction point
            assert log.popleft() == model.popleft()
        if n % 5 == 0 and model:
            assert log.popleft() == model.popleft()
        assert len(log) == len(model)
        assert [log[i] for i in range(len(log))] == list(model)
        if model:
            assert (log[0], log[-1], log[-len(model)]) == (model[0], model[-1], model[0])


def test_reading_outside_it_raises_index_error() -> None:
    log = FrameLog()
    with pytest.raises(IndexError):
        log.popleft()
    log.append(b"a")
    for index in (1, -2):
        with pytest.raises(IndexError):
            log[index]
    assert log.popleft() == b"a"
    assert not log


def test_retained_frames_give_the_collector_nothing_to_visit() -> None:
    broker = Broker(replay_events=10_000)
    for n in range(5_000):
        broker.publish(Event("token", {"n": n}), topic="thread/tokens")
    frames = broker._logs["thread/tokens"].frames
    assert len(frames) == 5_000
    # What a collection visits: the log's own references, and theirs (a deque's: each frame);
    # types aside (an instance refers to its type).
    held = [o for o in gc.get_referents(frames) if not isinstance(o, type)]
    visited = held + [o for container in held for o in gc.get_referents(container)]
    assert [o for o in visited if isinstance(o, bytes)] == []
    assert len(visited) < 10

"""The in-process broker's replay: per-topic logs of frames, and gathering a resume from them.

Split from `_broker.py` because it is the memory-sensitive, lock-sensitive half. A log holds
only SSE frames (one exact-size bytes per event), so a retained event costs its frame and
about 45 bytes. A resume is gathered topic by topic (`Replay.add`, the caller holding the
broker's lock for one topic at a time), keeps no more events than the subscription's buffer
holds, and is put in front of the live events last (`put_first`).
"""

from __future__ import annotations

import heapq
from collections import deque

from chronos.stream._event import Event
from chronos.stream._ids import Position, format_id
from chronos.stream._subscription import LocalSubscription, MissedEvents
from chronos.stream._wire import event_from_frame, frame_position

__all__ = ["Replay", "TopicLog", "put_first"]


class TopicLog:
    """One topic's replay log: the frames of its newest events, oldest first."""

    __slots__ = ("evicted", "frames", "last", "oldest_ms")

    def __init__(self) -> None:
        self.frames: deque[bytes] = deque()
        # The frame of the newest event evicted: events up to it may be gone. Kept whole and
        # read only on replay, so that evicting costs no parsing on the publish path.
        self.evicted: bytes | None = None
        self.last: Position = (0, 0)
        # At most the milliseconds of the oldest frame (evicting only makes that later), so
        # the once-a-second sweep over every topic parses a frame only when one may be due.
        self.oldest_ms = 0

    def evict_older_than(self, deadline_ms: int) -> None:
        # The age of an event is its id's milliseconds: the wall clock when it was published
        # (or later, if the clock went back), so an event is never evicted early.
        if self.oldest_ms >= deadline_ms:
            return
        frames = self.frames
        while frames:
            oldest_ms = frame_position(frames[0])[0]
            if oldest_ms >= deadline_ms:
                self.oldest_ms = oldest_ms
                return
            self.evicted = frames.popleft()
        self.oldest_ms = self.last[0]  # empty: whatever comes next is no older

    def evicted_after(self, position: Position) -> bool:
        return self.evicted is not None and frame_position(self.evicted) > position


class Replay:
    """The retained events a resuming subscription gets, gathered topic by topic.

    Keeps at most `keep` of them in a heap: the newest (or with `oldest`, the oldest); the
    others are only counted, and the newest of those not kept is remembered for the gap.
    """

    __slots__ = ("dropped_first", "dropped_last", "expired", "heap", "keep", "oldest", "total")

    def __init__(self, keep: int, oldest: bool) -> None:
        self.keep = keep
        self.oldest = oldest
        # (sort key, frame): the key is the position, negated with `oldest` so that the root
        # of the heap is always the event to give up first.
        self.heap: list[tuple[Position, bytes]] = []
        self.total = 0
        self.expired = False
        self.dropped_first: Position | None = None
        self.dropped_last: Position | None = None

    def add(self, frames: deque[bytes], after: Position, through: Position) -> None:
        """Consider the frames after `after` and up to `through`. Lock held."""
        lo, hi = _first_after(frames, after), _first_after(frames, through)
        if lo == hi:
            return
        self.total += hi - lo
        first = frame_position(frames[lo])
        if self.dropped_first is None or first < self.dropped_first:
            self.dropped_first = first
        heap, keep = self.heap, self.keep
        indexes = range(lo, hi) if self.oldest else range(hi - 1, lo - 1, -1)
        for index in indexes:
            frame = frames[index]
            position = frame_position(frame)
            key = (-position[0], -position[1]) if self.oldest else position
            if len(heap) < keep:
                heapq.heappush(heap, (key, frame))
            elif key > heap[0][0]:
                given_up = heapq.heapreplace(heap, (key, frame))[0]
                self._dropped((-given_up[0], -given_up[1]) if self.oldest else given_up)
            else:
                self._dropped(position)
                break  # the rest of this topic is further still from what is kept

    def _dropped(self, position: Position) -> None:
        if self.dropped_last is None or position > self.dropped_last:
            self.dropped_last = position

    def events(self) -> list[Event]:
        """The kept events, in id order."""
        ordered = sorted(self.heap, reverse=self.oldest)
        return [event_from_frame(frame) for _, frame in ordered]


def _first_after(frames: deque[bytes], position: Position) -> int:
    """The index of the first frame after `position` (`len(frames)`: none)."""
    lo, hi = 0, len(frames)
    if not hi or frame_position(frames[-1]) <= position:
        return hi
    while lo < hi:
        middle = (lo + hi) // 2
        if frame_position(frames[middle]) <= position:
            lo = middle + 1
        else:
            hi = middle
    return lo


def put_first(subscription: LocalSubscription, replayed: list[Event], replay: Replay) -> None:
    """Queue `replayed` before what `subscription` received live, as if published in order.

    The buffer is rebuilt through `_push`, so overflow is counted as for live events. Lock held.
    """
    live, live_overflowed = subscription._pending, subscription._overflowed
    live_missed = subscription._missed
    subscription._pending = []
    subscription._missed = missed = MissedEvents()
    subscription._overflowed = False
    not_kept = replay.total - len(replayed)
    if not_kept and not subscription._disconnect:
        assert replay.dropped_first is not None
        assert replay.dropped_last is not None
        missed.count = not_kept
        missed.first_id = format_id(replay.dropped_first)
        missed.last_id = format_id(replay.dropped_last)
    subscription._dropped_total += not_kept
    for event in replayed:
        subscription._push(event)
    if live_missed.count:
        # Live events were dropped while the replay was gathered: everything older, the whole
        # replay, would have been dropped before them.
        if not missed.count:
            pending = subscription._pending
            missed.first_id = pending[0].id or "" if pending else live_missed.first_id
        missed.count += len(subscription._pending) + live_missed.count
        subscription._dropped_total += len(subscription._pending)
        missed.last_id = live_missed.last_id
        subscription._pending = []
    for event in live:
        subscription._push(event)
    if (not_kept and subscription._disconnect) or live_overflowed:
        subscription._overflowed = True  # more did not fit: the reader ends, and resumes

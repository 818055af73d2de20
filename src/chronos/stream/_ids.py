"""Event ids: `"<milliseconds>-<sequence>"`, the form Redis stream ids take.

Ids increase strictly with every event a broker publishes, so they increase within every topic
too, and a client's `Last-Event-ID` says exactly where it stopped. Using the Redis form means a
Redis-backed broker can hand out its own stream ids and clients cannot tell the difference.
Like Redis, the clock never runs backwards here: if the wall clock does, the sequence number
keeps counting on the last millisecond.
"""

from __future__ import annotations

import re
import time
from typing import Final

from chronos.errors import InvalidLastEventID

__all__ = ["IdClock", "Position", "format_id", "parse_id"]

Position = tuple[int, int]

# ASCII digits only: `\d` also matches other scripts' digits, which `int()` accepts, so
# "\u0661-0" (from a percent-encoded query parameter) would pass for "1-0".
_ID: Final = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX: Final = 2**64 - 1


def format_id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def parse_id(value: str) -> Position:
    """The position an event id names.

    Raises:
        InvalidLastEventID: `value` is not of the form `<milliseconds>-<sequence>`.
    """
    match = _ID.fullmatch(value.strip(" "))
    if match is None:
        raise InvalidLastEventID(value)
    ms, seq = int(match[1]), int(match[2])
    if ms > _MAX or seq > _MAX:
        raise InvalidLastEventID(value)
    return ms, seq


class IdClock:
    """Hands out strictly increasing positions. Not thread-safe: the broker's lock guards it."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        # Every position handed out is greater than this one, the broker's starting point.
        self.last: Position = (time.time_ns() // 1_000_000, 0)

    def next(self) -> Position:
        ms = time.time_ns() // 1_000_000
        last_ms, last_seq = self.last
        position = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        self.last = position
        return position

"""`MissedEvents`: how every bounded reader counts what did not fit and is told of it."""

from __future__ import annotations

from chronos import stream


def test_missed_events_count_until_told_then_start_again() -> None:
    missed = stream.MissedEvents()
    for id in ("7", "8", "9"):
        missed.add(id)
    marker = missed.gap()
    assert (marker.type, marker.id) == (stream.GAP, "9")
    assert marker.data == {"reason": "overflow", "missed": 3, "first_id": "7", "last_id": "9"}
    assert missed.count == 0
    missed.add("12")
    assert missed.gap().data == {
        "reason": "overflow",
        "missed": 1,
        "first_id": "12",
        "last_id": "12",
    }

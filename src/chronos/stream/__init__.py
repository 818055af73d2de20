"""Event broker and Server-Sent Events."""

from chronos.stream._emit import EventSink, emit, event_sink

__all__ = ["EventSink", "emit", "event_sink"]

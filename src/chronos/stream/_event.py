"""`Event`, the value a broker carries, and its JSON form.

An event is serialised once, when it is published: the JSON bytes are cached on the event and
every subscriber, every SSE connection, shares them. Serialising at publish time also means an
event whose data cannot be encoded fails in the publisher's hands, not later in a web handler.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import orjson

__all__ = ["DEFAULT_TOPIC", "GAP", "Event"]

DEFAULT_TOPIC: Final = "default"
"""The topic of events published without one."""

GAP: Final = "gap"
"""The type of the marker event a subscriber gets in place of events it missed.

Its data says why and what: `{"reason": "overflow" | "expired" | "unknown", "missed": int |
None, "first_id": str | None, "last_id": str | None}`. `overflow`: the subscriber read too slowly
and its oldest pending events were dropped. `expired`: a resume asked for events that are no
longer retained (older than the replay buffer, or published before this broker started).
`unknown`: a resume named an id this broker never issued.
"""

_JSON_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _json_default(value: Any) -> Any:
    # pydantic models (graph state may be one) without importing pydantic.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event: a type, JSON-serialisable data, and, once published, an id and a topic.

    ```python
    broker.publish(stream.Event(type="node_end", data={"node": "extract", "status": "done"}))
    async for event in subscription:
        print(event.type, event.data, event.id)
    ```

    `id` and `topic` are filled in by the broker on publish: ids are opaque strings that
    increase with every event (`"1732460000000-3"`, the form Redis stream ids take) and a client
    hands one back as `Last-Event-ID` to resume after it. `type` may not contain a line break,
    so it can never add fields to an SSE message.
    """

    type: str
    data: Any = None
    id: str | None = None
    topic: str | None = None
    # Caches filled on first use (an event is immutable, so they never go stale): the JSON
    # form, and the SSE frame `stream._wire.event_frame` builds from it.
    _json: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _frame: bytes | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        type_ = self.type
        if "\n" in type_ or "\r" in type_ or "\0" in type_:
            raise ValueError(f"event type may not contain CR, LF or NUL: {type_!r}")

    def json(self) -> bytes:
        """The event as one line of JSON: `{"id", "type", "topic", "data"}`, computed once."""
        cached = self._json
        if cached is None:
            cached = orjson.dumps(
                {"id": self.id, "type": self.type, "topic": self.topic, "data": self.data},
                default=_json_default,
                option=_JSON_OPTIONS,
            )
            object.__setattr__(self, "_json", cached)
        return cached

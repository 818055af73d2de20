"""`Event`, the value a broker carries, and its JSON form: one serialisation for every broker.

An event is serialised once, when it is published: the JSON bytes are cached on the event and
every subscriber, every SSE connection, shares them. Serialising at publish time also means an
event whose data cannot be encoded fails in the publisher's hands, not later in a web handler.

Every broker delivers what the JSON says, not the object published: the in-process broker
decodes the JSON it made, the Redis broker the JSON it read, so a subscriber gets the same
data from both (a `datetime` arrives as its ISO string, a numpy array as a list, a dataclass
as a dict, a tuple as a list, NaN as None) and the same `EventNotSerializable` for what JSON
cannot carry (`bytes`, arbitrary objects). The one fallback: a lone surrogate in a string
(which UTF-8 cannot encode) becomes U+FFFD, the replacement character, so an event that
`str` can hold is never refused for it; a pair of surrogates becomes the character it spells.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Final

import orjson

from chronos.errors import EventNotSerializable

__all__ = [
    "DEFAULT_TOPIC", "GAP", "Event", "encode_json", "frame", "gap_event", "prepare", "stamp"
]

DEFAULT_TOPIC: Final = "default"
"""The topic of events published without one."""

GAP: Final = "gap"
"""The type of the marker event a subscriber gets in place of events it missed.

Its data says why and what: `{"reason": "overflow" | "expired" | "unknown", "missed": int |
None, "first_id": str | None, "last_id": str | None}`. `overflow`: the reader read too slowly and
missed `missed` events, `first_id` to `last_id` (a broker's subscriber: its oldest pending ones;
a graph's local reader with a buffer, `runner.stream(buffer=N)`: the newest, its ids the events'
`seq` as strings). `expired`: a resume asked for events that are no longer retained (older
than the replay buffer, or published before this broker or, on Redis, before Redis's data
began). `unknown`: a resume named an id this broker never issued. Every overflow marker is
built by `MissedEvents`, the count shared by all bounded readers.
"""

_JSON_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _json_default(value: Any) -> Any:
    # pydantic models (graph state may be one) without importing pydantic.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise EventNotSerializable(type(value).__name__)


def encode_json(value: Any) -> bytes:
    """`value` as JSON, the way every broker serialises event data.

    Raises:
        EventNotSerializable: `value` holds something JSON cannot carry (also a TypeError).
    """
    # orjson 3.13 leaves a 4 KiB allocation behind even a 100-byte result; what is kept (in
    # a replay log, an outbox) must be an exact-size copy, which is cheap.
    return bytes(memoryview(_dumps(value)))


def _dumps(value: Any) -> bytes:
    """`encode_json` without the copy, for results that are only read and dropped."""
    try:
        return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, EventNotSerializable):
            raise exc.__cause__ from None
        try:  # the documented fallback: lone surrogates replaced
            return orjson.dumps(
                _without_lone_surrogates(value), default=_json_default, option=_JSON_OPTIONS
            )
        except orjson.JSONEncodeError:
            raise EventNotSerializable(str(exc)) from None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        # Through UTF-16, a surrogate pair becomes its character, a lone one U+FFFD.
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_without_lone_surrogates(item) for item in value]
    return value


# A frozen class's one way to set its slots, bound once: an event is made for every token.
_set: Final = object.__setattr__


@dataclasses.dataclass(frozen=True, slots=True, eq=False, init=False)
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
    so it can never add fields to an SSE message. Events compare by identity: a published
    event is one thing however many subscribers share it, and data such as numpy arrays has
    no single answer to `==`.
    """

    type: str
    data: Any = None
    id: str | None = None
    topic: str | None = None
    # Caches filled on first use (an event is immutable, so they never go stale): the JSON
    # form, and the SSE frame `stream._wire.event_frame` builds from it.
    _json: bytes | None = dataclasses.field(default=None, init=False, repr=False)
    _frame: bytes | None = dataclasses.field(default=None, init=False, repr=False)

    # Written out rather than generated: the generated `__init__` looks `object.__setattr__`
    # up for each field and then calls a `__post_init__`, a fifth of an event's cost.
    def __init__(self, type: str, data: Any = None, id: str | None = None,
                 topic: str | None = None) -> None:
        if "\n" in type or "\r" in type or "\0" in type:
            raise ValueError(f"event type may not contain CR, LF or NUL: {type!r}")
        _set(self, "type", type)
        _set(self, "data", data)
        _set(self, "id", id)
        _set(self, "topic", topic)
        _set(self, "_json", None)
        _set(self, "_frame", None)

    def json(self) -> bytes:
        """The event as one line of JSON: `{"id", "type", "topic", "data"}`, computed once.

        Raises:
            EventNotSerializable: the data holds something JSON cannot carry.
        """
        cached = self._json
        if cached is None:
            frame = self._frame
            if frame is not None:  # a published event: its frame holds the JSON already
                cached = frame[frame.index(b"\ndata: ") + 7 : -2]
            else:
                cached = encode_json(
                    {"id": self.id, "type": self.type, "topic": self.topic, "data": self.data}
                )
            _set(self, "_json", cached)
        return cached


def gap_event(
    reason: str,
    id: str | None,
    missed: int | None = None,
    first_id: str | None = None,
    last_id: str | None = None,
) -> Event:
    """The `GAP` marker a subscriber reads in place of events it missed (see `GAP`).

    ```python
    gap_event("expired", "1732460000000-3")  # a resume after that id may have missed events
    ```
    """
    data = {"reason": reason, "missed": missed, "first_id": first_id, "last_id": last_id}
    return Event(GAP, data, id=id)


def prepare(event: Event, topic: str) -> tuple[bytes, bytes]:
    """Serialise `event` for publishing to `topic`, before it has an id.

    Returns the data's JSON, which subscribers get decoded (`stamp`), and the JSON line after
    its `"id"` member (`frame`). This is most of the work of publishing, done before the
    broker's lock.

    Raises:
        EventNotSerializable: the data holds something JSON cannot carry.
    """
    data_json = _dumps(event.data)
    rest = b',"type":%b,"topic":%b,"data":%b}' % (_name_json(event.type), _name_json(topic),
                                                    data_json)
    return data_json, rest


# A publisher repeats a few types and topics (a run's tokens: "token" and its thread's token
# topic, 200 times over): each is encoded once while it is in use.
_name_json: Final = functools.lru_cache(maxsize=4096)(encode_json)


def frame(id: str, rest: bytes) -> bytes:
    """The published event's default SSE frame (what `stream._wire.event_frame` makes of it),
    from its id and the `rest` of its JSON that `prepare` made."""
    raw_id = id.encode()
    return b'id: %b\ndata: {"id":"%b"%b\n\n' % (raw_id, raw_id, rest)


def stamp(event: Event, topic: str, id: str, data: Any, sse: bytes) -> Event:
    """The published event, as subscribers get it: `event` with its id, topic, the data
    decoded from its JSON, and its `frame`."""
    # Made without `__init__`: the type was checked when `event` was made.
    published = _new_event(Event)
    _set(published, "type", event.type)
    _set(published, "data", data)
    _set(published, "id", id)
    _set(published, "topic", topic)
    _set(published, "_json", None)
    _set(published, "_frame", sse)
    return published


_new_event: Final = object.__new__

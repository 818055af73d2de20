"""The Server-Sent Events wire format, as pure functions from values to bytes.

No I/O here, so the same encoder serves every transport and is tested on its own. The default
frame is a data-only message whose JSON carries the event type, because the browser's
`EventSource.onmessage` fires only for messages without an `event:` field:

    id: 1732460000000-0
    data: {"id":"1732460000000-0","type":"node_end","topic":"default","data":{...}}

Named frames (`event: node_end`) are an option for clients that use `addEventListener`.
Field values never contain CR or LF (data is split into one `data:` line per line), so no value
can end a field early and smuggle in another.
"""

from __future__ import annotations

import re
from typing import Final

import orjson

from chronos.stream._event import Event
from chronos.stream._ids import Position

__all__ = [
    "HEARTBEAT",
    "encode_comment",
    "encode_message",
    "encode_retry",
    "event_frame",
    "event_from_frame",
    "frame_position",
]

HEARTBEAT: Final = b": heartbeat\n"
"""A comment line: ignored by clients, it keeps proxies from closing an idle connection.

No blank line follows it (nor `retry:`): browsers dispatch nothing for a blank line after no
data, but some clients (httpx-sse) then report an empty message, so we never send one.
"""

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")


def _check_field(name: str, value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"SSE {name} may not contain CR, LF or NUL: {value!r}")


def encode_message(
    data: str, *, id: str | None = None, event: str | None = None, retry: int | None = None
) -> bytes:
    """Encode one SSE message; `data` may span lines (CR, LF and CRLF all split it).

    ```python
    encode_message("hello\\nworld", id="7")  # b"id: 7\\ndata: hello\\ndata: world\\n\\n"
    ```

    Raises:
        ValueError: `id` or `event` contains CR, LF or NUL, or `retry` is negative.
    """
    parts: list[str] = []
    if id is not None:
        _check_field("id", id)
        parts.append(f"id: {id}\n")
    if event is not None:
        _check_field("event", event)
        parts.append(f"event: {event}\n")
    if retry is not None:
        if retry < 0:
            raise ValueError(f"SSE retry must be >= 0, not {retry}")
        parts.append(f"retry: {retry}\n")
    for line in _LINE_BREAK.split(data):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts).encode()


def encode_comment(text: str = "") -> bytes:
    """Encode a comment (one `:` line per line of `text`), which clients ignore."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode()


def encode_retry(milliseconds: int) -> bytes:
    """Encode a `retry:` line: how long a browser waits before reconnecting.

    Browsers apply it as soon as they read it, so it needs no message of its own.
    """
    if milliseconds < 0:
        raise ValueError(f"SSE retry must be >= 0, not {milliseconds}")
    return b"retry: %d\n" % milliseconds


def event_frame(event: Event, *, named: bool = False) -> bytes:
    """The SSE message for a published event, built once and shared by every connection.

    The data line is `event.json()`, which is a single line (JSON escapes line breaks), with
    the type inside. `named=True` adds an `event:` line with the type.
    """
    if not named:
        frame = event._frame
        if frame is not None:
            return frame
    id_ = event.id
    if id_ is None:
        raise ValueError("only a published event (one with an id) has a frame")
    _check_field("id", id_)
    head = b"id: " + id_.encode()
    if named:
        # Event() already refuses line breaks in a type; checked again here because a frame
        # is where an injected field would do harm.
        _check_field("event", event.type)
        head += b"\nevent: " + event.type.encode()
    frame = head + b"\ndata: " + event.json() + b"\n\n"
    if not named:
        object.__setattr__(event, "_frame", frame)
    return frame


def frame_position(frame: bytes) -> Position:
    """The position of the event whose default frame (`event_frame(event)`) is `frame`."""
    end = frame.index(b"\n", 4)
    ms, _, seq = frame[4:end].partition(b"-")
    return int(ms), int(seq)


def event_from_frame(frame: bytes) -> Event:
    """The published event whose default frame is `frame`, with the frame cached on it.

    A broker that retains only frames (compact: one exact-size bytes per event) gets its
    events back from them to replay.
    """
    start = frame.index(b"\ndata: ") + 7
    json = frame[start:-2]
    fields = orjson.loads(json)
    event = Event(fields["type"], fields["data"], fields["id"], fields["topic"])
    object.__setattr__(event, "_json", json)
    object.__setattr__(event, "_frame", frame)
    return event

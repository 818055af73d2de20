"""Incremental, sans-IO decoders for the three framings vendors stream in.

Each decoder is fed raw bytes exactly as they come off the socket, split anywhere (inside a
UTF-8 character, inside a line, between the CR and LF of a CRLF) and returns the complete
frames that the new bytes finished. None of them does I/O, so the same decoder serves the async
provider, the sync bridge and the benchmarks, and tests can feed them any split they like.

- `SSEDecoder`: Server-Sent Events, following the WHATWG interpretation rules (one leading
  byte order mark ignored; CRLF, CR or LF line ends; `:` comments; a field without a colon
  has an empty value; one space after the colon stripped; multi-line `data`; `id` ignored if
  it holds NUL; `retry` only if all ASCII digits; a blank line dispatches; an event with an
  empty data buffer is not dispatched; an event not ended by a blank line is discarded at the
  end of the stream, as a browser does: every vendor ends its last event with a blank line,
  and a body cut inside an event is caught by the providers as a truncated stream).
- `NDJSONDecoder`: one JSON document per line (Ollama).
- `JSONArrayDecoder`: a JSON array streamed element by element (Gemini without `alt=sse`,
  pretty-printed, elements separated by `\\n,\\r\\n`).

Lines are split on bytes, never on decoded text: CR and LF never occur inside a multi-byte
UTF-8 sequence, so a complete line is always complete UTF-8, and `bytes.splitlines` splits on
exactly the three SSE line ends (`str.splitlines` would also split on U+2028 and friends, which
JSON strings may contain raw). This is the per-chunk hot path: one `splitlines` per network
read and a few comparisons per line.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["JSONArrayDecoder", "NDJSONDecoder", "SSEDecoder", "SSEEvent"]


_BOM: Final = b"\xef\xbb\xbf"  # U+FEFF in UTF-8


class SSEEvent:
    """One dispatched Server-Sent Event: its `event` type ("message" if unnamed), `data`, `id`."""

    __slots__ = ("data", "event", "id")

    def __init__(self, event: str, data: str, id: str) -> None:
        self.event = event
        self.data = data
        self.id = id

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data[:60]!r}, id={self.id!r})"


class _LineSplitter:
    """Turns arbitrary byte chunks into complete lines (without their line ends)."""

    __slots__ = ("_pending", "_skip_lf")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the pieces of an unfinished line
        # A chunk ending in CR may be the first half of a CRLF: drop a LF that starts the next.
        self._skip_lf = False

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            # An empty read says nothing about the byte after a CR: keep waiting for it.
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:  # b"\n"
                data = data[1:]
                if not data:
                    return []
        pending = self._pending
        if b"\n" not in data and b"\r" not in data:
            # Joined only once the line ends: a long line in many reads would otherwise be
            # copied whole on every read, quadratic in its length.
            pending.append(data)
            return []
        if pending:
            pending.append(data)
            data = b"".join(pending)
            pending.clear()
        lines = data.splitlines()
        last = data[-1]
        if last == 0x0D:  # b"\r"
            self._skip_lf = True
        elif last != 0x0A:  # b"\n"
            pending.append(lines.pop())
        return lines

    def flush(self) -> list[bytes]:
        """The unterminated last line, if any (a stream may end without a final newline)."""
        pending = b"".join(self._pending)
        self._pending.clear()
        return [pending] if pending else []


class SSEDecoder:
    """Decode a `text/event-stream` body incrementally.

    ```python
    decoder = SSEDecoder()
    for raw in network_chunks:
        for event in decoder.feed(raw):
            handle(event.event, event.data)
    for event in decoder.flush():   # at end of stream
        handle(event.event, event.data)
    ```

    `last_event_id` is the spec's "last event ID string": the `id` buffer as it stood at the
    last blank line (it persists across events). `retry` is the reconnection time in
    milliseconds from the latest valid `retry:` field, None until one comes.
    """

    __slots__ = ("_data", "_event", "_head", "_id", "_lines", "last_event_id", "retry")

    def __init__(self) -> None:
        self._lines = _LineSplitter()
        # The first bytes, held until they show whether the stream opens with a byte order
        # mark (which may arrive split over several reads); None once that is decided.
        self._head: bytes | None = b""
        self._data: list[bytes] = []
        self._event = b""
        self._id = ""
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Consume `data`; return the events it completed, in order."""
        if self._head is not None:
            data = self._strip_bom(self._head + data)
        return self._process(self._lines.feed(data))

    def flush(self) -> list[SSEEvent]:
        """End of stream: whatever is pending is discarded, per spec.

        That is an event not yet dispatched by a blank line, and a last line without its line
        end (a field not yet received whole, which may not be what the server meant to send).
        """
        self._head = None
        self._lines = _LineSplitter()
        self._data = []
        self._event = b""
        return []

    def _strip_bom(self, head: bytes) -> bytes:
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[len(_BOM):] if head.startswith(_BOM) else head

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                self.last_event_id = self._id
                if data:
                    events.append(
                        SSEEvent(
                            self._event.decode("utf-8", "replace") if self._event else "message",
                            (b"\n".join(data) if len(data) > 1 else data[0]).decode(
                                "utf-8", "replace"
                            ),
                            self._id,
                        )
                    )
                    data = self._data = []
                self._event = b""
                continue
            # The common case first: "data: {...}".
            if line[:6] == b"data: ":
                data.append(line[6:])
                continue
            if line[0] == 0x3A:  # b":" comment, e.g. OpenRouter's ": OPENROUTER PROCESSING"
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\x00" not in value:
                    self._id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
                self.retry = int(value)
        return events


class NDJSONDecoder:
    """Decode newline-delimited JSON incrementally: returns each complete, non-blank line.

    The lines are bytes, ready for `orjson.loads`.
    """

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = _LineSplitter()

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the complete lines it finished (blank lines skipped)."""
        return [line for line in self._lines.feed(data) if line.strip()]

    def flush(self) -> list[bytes]:
        """End of stream: a last line without a newline is still a line."""
        return [line for line in self._lines.flush() if line.strip()]


# Only these bytes change the scanner's state; everything between them is skipped by the regex.
_STRUCTURAL: Final = re.compile(rb'["\\{}\[\]]')


class JSONArrayDecoder:
    """Decode a JSON array streamed incrementally into its elements, as raw bytes.

    ```python
    decoder = JSONArrayDecoder()
    for raw in network_chunks:
        for element in decoder.feed(raw):
            handle(orjson.loads(element))
    decoder.flush()   # raises ValueError if the array never closed
    ```

    Gemini's `streamGenerateContent` without `alt=sse` sends `[{...}\\n,\\r\\n{...}]`,
    pretty-printed. The decoder tracks nesting and strings only; validating each element is
    left to the JSON parser. A body that is a single JSON object instead of an array (an error
    body) comes out as one element.
    """

    __slots__ = ("_buf", "_depth", "_element_depth", "_escape", "_in_string", "_pos", "_start",
                 "closed")

    def __init__(self) -> None:
        # Grown in place: an element arriving in many small reads (an inline image) would
        # cost a copy of everything so far per read, quadratic, as immutable bytes.
        self._buf = bytearray()
        self._pos = 0  # next byte of _buf to scan
        self._start = -1  # where the current element began in _buf, -1 if between elements
        self._depth = 0
        self._element_depth = -1  # 1 inside a top-level array, 0 for a bare object; -1 unknown
        self._in_string = False
        self._escape = False
        self.closed = False  # the top-level value has ended

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the array elements it completed."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = self._pos
        if self._element_depth < 0:
            stripped = buf.lstrip()
            if not stripped:
                buf.clear()
                return out
            self._element_depth = 1 if stripped[:1] == b"[" else 0
        if self._escape and pos < len(buf):
            pos += 1
            self._escape = False
        depth = self._depth
        element_depth = self._element_depth
        in_string = self._in_string
        start = self._start
        search = _STRUCTURAL.search
        while True:
            match = search(buf, pos)
            if match is None:
                # Nothing structural up to the end: never scan these bytes again, or a long
                # string arriving in many reads is rescanned from its start on every one.
                pos = max(pos, len(buf))
                break
            index = match.start()
            char = buf[index]
            pos = index + 1
            if in_string:
                if char == 0x22:  # '"'
                    in_string = False
                elif char == 0x5C:  # backslash: skip the escaped byte, maybe in the next chunk
                    if pos < len(buf):
                        pos += 1
                    else:
                        self._escape = True
                continue
            if char == 0x22:
                in_string = True
                if depth == element_depth and start < 0:
                    start = index  # a string element
            elif char in (0x7B, 0x5B):  # { [
                if depth == element_depth and start < 0:
                    start = index
                depth += 1
            elif char in (0x7D, 0x5D):  # } ]
                depth -= 1
                if depth == element_depth and start >= 0:
                    out.append(bytes(buf[start:pos]))
                    start = -1
                    if element_depth == 0:
                        self.closed = True
                elif depth < element_depth or depth == 0:
                    self.closed = True
        # Keep only what an unfinished element still needs.
        keep_from = start if start >= 0 else pos
        keep_from = min(keep_from, len(buf))
        del buf[:keep_from]
        self._pos = pos - keep_from
        self._start = start - keep_from if start >= 0 else -1
        self._depth = depth
        self._in_string = in_string
        return out

    def flush(self) -> list[bytes]:
        """End of stream. Raises ValueError when the array (or an element) was left open."""
        if self._element_depth >= 0 and not self.closed:
            raise ValueError("JSON array stream ended before the array closed")
        return []

"""Sans-IO decoder of the AWS event-stream framing (`application/vnd.amazon.eventstream`).

Why this module exists: Bedrock's `ConverseStream` answers in binary frames, not SSE. Each
message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), typed
headers (`:message-type`, `:event-type`, `:exception-type`...), a payload, and a CRC32 of
everything before it; all integers big-endian. Both CRCs are checked, so a corrupted or
misaligned body is a `StreamProtocolError`, never a wrong chunk.

The decoder is built for the per-event path: whole frames are parsed straight from the bytes
the network delivered (only a frame cut by a read is copied, into a buffer that grows in
amortised constant time however small the reads), and a stream repeats a handful of
distinct header blocks, so their parsed form is cached. Messages decoded before a bad frame
are still returned; the error is raised by the next `feed` or `flush`.
"""

from __future__ import annotations

import struct
import types
import uuid
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, NamedTuple

from chronos.errors import StreamProtocolError

__all__ = ["EventStreamDecoder", "EventStreamMessage", "HeaderValue"]

HeaderValue = bool | int | bytes | str | datetime | uuid.UUID

_PRELUDE: Final = struct.Struct(">III")
_CRC: Final = struct.Struct(">I")
_PRELUDE_LENGTH: Final = 12
_MIN_MESSAGE: Final = 16  # prelude + message CRC
# botocore's own limits: larger values mean a misaligned or hostile stream.
_MAX_HEADERS: Final = 128 * 1024
_MAX_PAYLOAD: Final = 16 * 1024 * 1024
_HEADER_CACHE_SIZE: Final = 64

_FIXED: Final[Mapping[int, struct.Struct]] = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
    8: struct.Struct(">q"),
}
_LENGTH: Final = struct.Struct(">H")


class EventStreamMessage(NamedTuple):
    """One decoded message: its headers and its payload (JSON for Bedrock)."""

    headers: Mapping[str, HeaderValue]
    payload: bytes


class _FrameError(Exception):
    """A malformed frame; becomes `StreamProtocolError` with the provider's name."""


def _header_value(block: bytes, pos: int, kind: int) -> tuple[HeaderValue, int]:
    if kind == 7 or kind == 6:
        (length,) = _LENGTH.unpack_from(block, pos)
        end = pos + 2 + length
        if end > len(block):
            raise _FrameError("a header value runs past the headers")
        raw = block[pos + 2 : end]
        return (raw.decode() if kind == 7 else raw), end
    if kind == 0 or kind == 1:
        return kind == 0, pos
    fixed = _FIXED.get(kind)
    if fixed is not None:
        (number,) = fixed.unpack_from(block, pos)
        if kind == 8:
            return datetime.fromtimestamp(number / 1000, UTC), pos + 8
        return number, pos + fixed.size
    if kind == 9:
        if pos + 16 > len(block):
            raise _FrameError("a UUID header runs past the headers")
        return uuid.UUID(bytes=block[pos : pos + 16]), pos + 16
    raise _FrameError(f"unknown header value type {kind}")


def _parse_headers(block: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(block)
    try:
        while pos < end:
            name_end = pos + 1 + block[pos]
            if name_end >= end:
                raise _FrameError("a header name runs past the headers")
            name = block[pos + 1 : name_end].decode()
            headers[name], pos = _header_value(block, name_end + 1, block[name_end])
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise _FrameError(f"malformed headers ({exc})") from None
    return headers


class EventStreamDecoder:
    """Incremental decoder: bytes in, `EventStreamMessage`s out.

    ```python
    decoder = EventStreamDecoder(provider="bedrock")
    for piece in body:
        for message in decoder.feed(piece):
            message.headers[":event-type"], message.payload
    decoder.flush()   # StreamProtocolError if the body ended inside a frame
    ```
    """

    __slots__ = ("_error", "_header_cache", "_model", "_needed", "_pending", "_provider")

    def __init__(self, *, provider: str = "", model: str = "") -> None:
        self._provider = provider
        self._model = model
        self._pending = bytearray()
        self._needed = _PRELUDE_LENGTH  # bytes `_pending` must hold before parsing again
        self._header_cache: dict[bytes, Mapping[str, HeaderValue]] = {}
        self._error: StreamProtocolError | None = None

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        """Decode the messages `data` completes; keep a cut frame for the next call.

        Raises:
            StreamProtocolError: a CRC does not match, a length is impossible, or a header
                is malformed (after the messages before it were returned).
        """
        if self._error is not None:
            raise self._error
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._needed:
                return []
            data = bytes(pending)
            pending.clear()
        messages: list[EventStreamMessage] = []
        try:
            consumed = self._parse(data, messages)
        except _FrameError as exc:
            self._error = StreamProtocolError(
                f"{self._provider}: malformed event-stream frame ({exc})",
                provider=self._provider,
                model=self._model,
            )
            if not messages:
                raise self._error from None
            return messages
        if consumed < len(data):
            pending += memoryview(data)[consumed:]
        return messages

    def flush(self) -> list[EventStreamMessage]:
        """The body ended: nothing may be left half-read."""
        if self._error is not None:
            raise self._error
        if self._pending:
            raise StreamProtocolError(
                f"{self._provider}: the stream ended inside an event-stream frame (truncated)",
                provider=self._provider,
                model=self._model,
            )
        return []

    def _parse(self, data: bytes, messages: list[EventStreamMessage]) -> int:
        view = memoryview(data)
        crc32 = zlib.crc32
        unpack_prelude = _PRELUDE.unpack_from
        cache = self._header_cache
        end = len(data)
        pos = 0
        while end - pos >= _PRELUDE_LENGTH:
            total, headers_length, prelude_crc = unpack_prelude(data, pos)
            if crc32(view[pos : pos + 8]) != prelude_crc:
                raise _FrameError("prelude CRC mismatch")
            if (
                total < _MIN_MESSAGE
                or headers_length > _MAX_HEADERS
                or total - _MIN_MESSAGE - headers_length > _MAX_PAYLOAD
                or headers_length > total - _MIN_MESSAGE
            ):
                raise _FrameError(f"impossible lengths ({total}, {headers_length})")
            frame_end = pos + total
            if frame_end > end:
                self._needed = total
                return pos
            crc_at = frame_end - 4
            # Continues the prelude's CRC: the message CRC covers every byte before it.
            if crc32(view[pos + 8 : crc_at], prelude_crc) != _CRC.unpack_from(data, crc_at)[0]:
                raise _FrameError("message CRC mismatch")
            payload_at = pos + _PRELUDE_LENGTH + headers_length
            block = data[pos + _PRELUDE_LENGTH : payload_at]
            headers = cache.get(block)
            if headers is None:
                # Read-only: one parsed block is shared by every message that repeats it.
                headers = types.MappingProxyType(_parse_headers(block))
                if len(cache) < _HEADER_CACHE_SIZE:
                    cache[block] = headers
            messages.append(EventStreamMessage(headers, data[payload_at:crc_at]))
            pos = frame_end
        self._needed = _PRELUDE_LENGTH
        return pos

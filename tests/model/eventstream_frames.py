"""Build AWS event-stream frames for tests, independently of the decoder under test.

The layout is the one in the vendor-streams README: total length, headers length, CRC32 of
those 8 bytes, headers (name length, name, value type, value), payload, CRC32 of all before.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["event", "exception", "frame", "raw_frame"]


def _header(name: str, value: str | bytes | bool | int) -> bytes:
    encoded = name.encode()
    head = bytes([len(encoded)]) + encoded
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + b"\x04" + struct.pack(">i", value)
    raw = value.encode() if isinstance(value, str) else value
    kind = 7 if isinstance(value, str) else 6
    return head + bytes([kind]) + struct.pack(">H", len(raw)) + raw


def frame(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One message with these headers (strings, byte arrays, booleans, int32s)."""
    return raw_frame(b"".join(_header(name, value) for name, value in headers.items()), payload)


def raw_frame(block: bytes, payload: bytes) -> bytes:
    """One message around an already encoded headers block (valid or not)."""
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, data: Mapping[str, Any]) -> bytes:
    """A Bedrock ConverseStream event frame."""
    return frame({":event-type": event_type, ":content-type": "application/json",
                  ":message-type": "event"}, orjson.dumps(data))


def exception(exception_type: str, data: Mapping[str, Any]) -> bytes:
    """A Bedrock exception frame (`:message-type: exception`)."""
    return frame({":exception-type": exception_type, ":content-type": "application/json",
                  ":message-type": "exception"}, orjson.dumps(data))

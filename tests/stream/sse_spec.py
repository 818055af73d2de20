"""A Server-Sent Events parser written from the WHATWG HTML spec (section 9.2.6), for tests.

Independent of the encoder under test and of httpx-sse, so the round-trip tests mean something.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Message:
    type: str
    data: str
    last_event_id: str


@dataclasses.dataclass
class SpecDecoder:
    last_event_id: str = ""
    retry: int | None = None
    comments: list[str] = dataclasses.field(default_factory=list)
    _data: list[str] = dataclasses.field(default_factory=list)
    _type: str = ""
    _buffer: str = ""

    def feed(self, text: str) -> list[Message]:
        """Feed decoded text; return the messages it completes."""
        self._buffer += text
        messages: list[Message] = []
        while True:
            # A line ends at CRLF, LF or CR; a trailing CR might be the start of CRLF.
            cut = -1
            for i, ch in enumerate(self._buffer):
                if ch == "\n" or (ch == "\r" and i + 1 < len(self._buffer)):
                    cut = i
                    break
            if cut < 0:
                return messages
            line = self._buffer[:cut]
            skip = 2 if self._buffer[cut] == "\r" and self._buffer[cut + 1] == "\n" else 1
            self._buffer = self._buffer[cut + skip :]
            message = self._line(line)
            if message is not None:
                messages.append(message)

    def _line(self, line: str) -> Message | None:
        if line == "":
            if not self._data:
                self._type = ""
                return None
            message = Message(self._type or "message", "\n".join(self._data), self.last_event_id)
            self._data, self._type = [], ""
            return message
        if line.startswith(":"):
            self.comments.append(line[1:])
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():  # ASCII digits only
            self.retry = int(value)
        return None

"""What the compiled vendor translations share (`_openai_translate`, `_anthropic_translate`).

The interpreted, subclassable `StreamTranslator`s of `openai.py` and `anthropic.py` each own
one `EventTranslation` per stream and hand it every event; the per-event work then runs
compiled (mypyc), calling back into the translator only to raise its typed, redacted errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._types import ChatResponse

if TYPE_CHECKING:
    from chronos.model._provider import StreamTranslator

__all__ = ["EventTranslation", "parse_object"]


class EventTranslation:
    """One stream's per-event translation; a subclass implements `on_event`."""

    def translate(self, translator: StreamTranslator, event: SSEEvent, out: ChunkBuilder) -> None:
        """`StreamTranslator.translate`: `on_event`, a chunk of an unexpected shape typed."""
        try:
            self.on_event(translator, event, out)
            if type(out.id) is not str or type(out.model) is not str:
                raise TypeError(f"id {out.id!r} and model {out.model!r} must be strings")
            return
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            failure: Exception = exc
        # Raised outside the handler, as the base class does: not chained to `failure`.
        raise translator._shape_error(event, failure)

    def on_event(self, translator: StreamTranslator, event: SSEEvent, out: ChunkBuilder) -> None:
        """Translate one event into `out`."""
        raise NotImplementedError

    def chunks(
        self, translator: StreamTranslator, out: ChunkBuilder, events: list[SSEEvent]
    ) -> Iterator[ChatResponse]:
        """`ChunkBuilder.chunks` with this translation: the same loop, with native calls."""
        for event in events:
            self.translate(translator, event, out)
            chunk = out.build()
            if chunk is not None:
                yield chunk
            if out.ended:
                return


def parse_object(translator: StreamTranslator, data: str, what: str) -> dict[str, Any]:
    """`data` parsed as a JSON object; otherwise `translator`'s typed error (`what` names
    the payload in it)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        # `translator.loads` raises the typed (and redacted) error for what did not parse.
        parsed = translator.loads(data)
        if not isinstance(parsed, dict):
            raise translator.stream_error(f"unexpected {what} {data[:200]!r}")
    return parsed

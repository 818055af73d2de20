"""What the UI dialects' translators share: a run's broker events dispatched by type (pure).

A subclass names the pieces in its wire format; this base follows model tokens (through
`MessageParts`) and which nodes have started and not yet ended, and leaves out what no UI
dialect shows: a subgraph's own events (its parent node's stand for them). After a gap marker
(events lost) it shows only pauses, and the dialect ends with the final answer whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from chronos.server.dialects._openai_output import final_answer
from chronos.server.dialects._parts import MessageParts, Part
from chronos.stream import GAP, Event

__all__ = ["HEARTBEAT", "Translator", "data_frames"]

HEARTBEAT: Final = b": heartbeat\n\n"  # an SSE comment: keeps proxies from closing an idle stream


def data_frames(items: list[dict[str, Any]]) -> bytes:
    """SSE frames with one JSON item each as `data:` (no `event:` name, no `id:`), as both
    AG-UI and the AI SDK read them."""
    return b"".join(b"data: " + orjson.dumps(i, default=repr) + b"\n\n" for i in items)


class Translator:
    def __init__(self) -> None:
        self._parts = MessageParts()
        self._steps: list[str] = []  # nodes started and not yet ended
        self.lost = False  # a GAP was seen: events after it are not shown

    def translate(self, event: Event) -> list[dict[str, Any]]:
        """The wire events one broker event gives (most give none or one).

        After a `GAP` (events lost: a reader too slow, or a replay that no longer reaches
        back far enough) a message would be shown with holes: its open parts close, `lost`
        is set, and only pauses are shown from then on; the dialect ends with the run's
        final answer whole (`whole_answer`).
        """
        payload = event.data
        if event.type == GAP:
            if self.lost:
                return []
            self.lost = True
            return self._encode(self._parts.close_all())
        if not isinstance(payload, Mapping) or payload.get("path"):
            return []
        type = event.type
        if self.lost and type != "interrupt":
            return []
        node_id = str(payload.get("node_id") or "")
        if type == "token":
            delta = payload.get("data")
            return self._encode(self._parts.token(node_id, delta)) \
                if isinstance(delta, Mapping) else []
        if type == "node_start":
            self._steps.append(node_id)
            return self._step_started(node_id)
        if type == "node_end":
            out = self._encode(self._parts.close_node(node_id))
            started = node_id in self._steps
            if started:
                self._steps.remove(node_id)
            return out + self._node_ended(node_id, payload, started)
        if type == "custom":
            return self._custom(str(payload.get("name") or "custom"), payload.get("data"))
        if type == "interrupt":
            return self._paused(payload.get("data"))
        return []

    def whole_answer(self, values: Any, message_id: str) -> list[dict[str, Any]]:
        """The text of the last assistant message of `values` as one whole text part: a
        run's answer when its streamed events can no longer be shown."""
        text = final_answer(values).content
        if not text:
            return []
        return self._encode([("text-start", message_id, message_id, None),
                             ("text-delta", message_id, text, None),
                             ("text-end", message_id, None, None)])

    def recovered(self, values: Any, pause: list[Any], message_id: str, *,
                  missed_start: bool) -> list[dict[str, Any]]:
        """What a run whose events were lost did, from its final state: its answer whole,
        and, when none of its events were seen (`missed_start`), the pause it ended in."""
        out = self.whole_answer(values, message_id)
        if missed_start and pause:
            out += self._paused(pause)
        return out

    def _close(self) -> list[dict[str, Any]]:
        """Whatever is still open, closed: the parts, then the steps, innermost first."""
        out = self._encode(self._parts.close_all())
        for node_id in reversed(self._steps):
            out += self._step_finished(node_id)
        self._steps.clear()
        return out

    def _encode(self, parts: list[Part]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _step_started(self, node_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _step_finished(self, node_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _node_ended(self, node_id: str, payload: Mapping[str, Any], started: bool
                    ) -> list[dict[str, Any]]:
        """After the node's parts closed: its results, and the end of its step if `started`."""
        raise NotImplementedError

    def _custom(self, name: str, data: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _paused(self, data: Any) -> list[dict[str, Any]]:
        """An `interrupt` event: `data` the questions asked, or the nodes paused at."""
        raise NotImplementedError

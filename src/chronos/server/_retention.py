"""Durable and ephemeral events: a run's tokens get a topic of their own.

Each broker topic keeps a bounded replay window (the in-process broker its last
`replay_events`, Redis its `maxlen`). If a long generation's tokens shared the thread's
topic, they would push the run's graph events (updates, values, interrupts, the end) out of
that window, and a client reconnecting with `Last-Event-ID` would lose what matters. So the
runner's broker is wrapped: `token` events go to `<thread>/tokens`, everything else to the
thread's topic, and a run's stream subscribes to both (a broker replays several topics in
publish order).

What a reconnecting client gets: every graph event after its `Last-Event-ID`, and the tokens
still retained. When tokens have left their window, the stream says so (a `gap` comment) and
the node's `updates` / `values` events, which carry its whole result, stand for them: the
picture is consistent, only the token-by-token animation of an old node is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chronos.stream import BrokerProtocol, Event, Overflow, Subscription

__all__ = ["TokenTopics", "run_topics"]

_TOKENS = "/tokens"


def run_topics(thread_id: str) -> list[str]:
    """The topics a run's stream reads: its graph events, then its tokens."""
    return [thread_id, thread_id + _TOKENS]


class TokenTopics(BrokerProtocol):
    """A broker that publishes `token` events to their thread's token topic (see above).

    `observe`, if given, sees each event once the broker took it (the server's metrics).
    """

    def __init__(self, broker: BrokerProtocol,
                 observe: Callable[[Event], None] | None = None) -> None:
        self.broker = broker
        self._observe = observe

    def publish(self, event: Event, topic: str | None = None) -> None:
        if event.type == "token" and topic is not None:
            topic += _TOKENS
        self.broker.publish(event, topic)
        if self._observe is not None:
            self._observe(event)

    def subscribe(
        self,
        id: str,
        topics: Iterable[str] | None = None,
        *,
        last_event_id: str | None = None,
        replace: bool = False,
        max_pending: int | None = None,
        overflow: Overflow = "drop_oldest",
    ) -> Subscription:
        return self.broker.subscribe(id, topics, last_event_id=last_event_id, replace=replace,
                                     max_pending=max_pending, overflow=overflow)

    def unsubscribe(self, id: str) -> None:
        self.broker.unsubscribe(id)

    async def aclose(self) -> None:
        await self.broker.aclose()

"""Event broker and Server-Sent Events.

```python
from chronos import stream

broker = stream.Broker()
broker.publish(stream.Event(type="node_end", data={"node": "extract", "status": "done"}))
app = Starlette(routes=[Route("/events", broker.sse_handler())])
```

Several server processes share events through Redis: `stream.broker_from_url("redis://...")`
(`chronos.stream.redis.RedisBroker`, the `redis` extra).
"""

from chronos.stream._asgi import Authorize, SSEHandler
from chronos.stream._broker import Broker, BrokerStatistics
from chronos.stream._event import DEFAULT_TOPIC, GAP, Event
from chronos.stream._protocol import (
    BrokerProtocol,
    Overflow,
    Subscription,
    SubscriptionStatistics,
)
from chronos.stream._subscription import MissedEvents
from chronos.stream._url import broker_from_url

__all__ = [
    "DEFAULT_TOPIC",
    "GAP",
    "Authorize",
    "Broker",
    "BrokerProtocol",
    "BrokerStatistics",
    "Event",
    "MissedEvents",
    "Overflow",
    "SSEHandler",
    "Subscription",
    "SubscriptionStatistics",
    "broker_from_url",
]

# Reprs, docs and pickles name the public path (`chronos.stream.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

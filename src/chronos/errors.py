"""Every exception chronos raises, in one tree.

```
ChronosError
├── ConfigurationError           bad URL, unknown provider, missing extra or key
├── EmitOutsideRunError          `graph.emit()` called where no run receives it
├── ProviderError                .provider .model
│   ├── ProviderHTTPError        .status_code .request_id .retry_after .body (redacted)
│   │   ├── BadRequestError      400, 413, 422 (e.g. context length)
│   │   ├── AuthenticationError  401, 403
│   │   ├── NotFoundError        404 (unknown model or deployment)
│   │   ├── RateLimitError       429
│   │   └── ServerError          5xx
│   ├── ProviderConnectionError  could not connect, or the connection dropped
│   │   └── StreamDisconnectedError  the connection dropped after the first chunk
│   ├── ProviderTimeoutError     .phase ("connect" or "idle"); also a TimeoutError
│   ├── StreamProtocolError      .raw: a chunk that does not parse
│   └── ProviderStreamError      .code: an error event the vendor sent mid-stream
├── GraphError
│   ├── InvalidGraphError        .problems, all found at compile time
│   ├── NodeError                .node_id .run_id, raised from the node's own exception
│   │   └── RouterError          .router .returned: a router answered with no node id
│   ├── StepLimitError           .limit: the run took more steps than allowed
│   ├── NodeTimeoutError         .node_id .timeout: an attempt ran past the node's timeout
│   ├── InterruptNotFound        .interrupt_ids .pending_ids: a resume names no pending one
│   ├── RunConflictError         .session_id: another process is running this session
│   └── SessionCompletedError    .session_id .checkpoint_id: a completed run cannot be updated
├── StoreError
│   ├── CheckpointNotFound       .session_id .checkpoint_id
│   └── StateNotSerializable     .key
├── BrokerError
│   ├── InvalidLastEventID       .value: also a ValueError
│   ├── SubscriptionExists       .subscription_id
│   ├── SubscriptionOverflow     .subscription_id .last_event_id: closed for reading too slowly
│   ├── EventNotSerializable     .reason: event data JSON cannot carry; also a TypeError
│   └── BrokerUnavailable        the backing service (Redis) cannot be reached
└── RequestRefused               .status_code .detail: the server refuses a request (404, 422...)
    └── ClientGone               the client disconnected while sending its request
```

An interrupt is not an error: it is a graph event and a run status.
Secrets never reach a message, an attribute or a repr: error bodies are redacted
before they are stored here.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BrokerError",
    "BrokerUnavailable",
    "CheckpointNotFound",
    "ChronosError",
    "ClientGone",
    "ConfigurationError",
    "EmitOutsideRunError",
    "EventNotSerializable",
    "GraphError",
    "InterruptNotFound",
    "InvalidGraphError",
    "InvalidLastEventID",
    "NodeError",
    "NodeTimeoutError",
    "NotFoundError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RequestRefused",
    "RouterError",
    "RunConflictError",
    "ServerError",
    "SessionCompletedError",
    "StateNotSerializable",
    "StepLimitError",
    "StoreError",
    "StreamDisconnectedError",
    "StreamProtocolError",
    "SubscriptionExists",
    "SubscriptionOverflow",
]


class ChronosError(Exception):
    """Base class of every exception chronos raises."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(ChronosError):
    """Chronos was set up wrongly: an unknown provider or URL scheme, a missing key or extra."""


class EmitOutsideRunError(ChronosError, RuntimeError):
    """`chronos.graph.emit()` was called outside a running node, so no stream would get it."""


# --- model providers -------------------------------------------------------------------------


class ProviderError(ChronosError):
    """A model provider failed to give a complete response."""

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status.

    `body` holds the vendor's error body (truncated, with anything key-like redacted).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        provider: str = "",
        model: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
        body: str = "",
    ) -> None:
        super().__init__(message, provider=provider, model=model)
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


class BadRequestError(ProviderHTTPError):
    """The provider rejected the request (400, 413, 422), e.g. a context that is too long."""


class AuthenticationError(ProviderHTTPError):
    """The API key is missing, wrong, or lacks permission (401, 403)."""


class NotFoundError(ProviderHTTPError):
    """The model, deployment or endpoint does not exist (404)."""


class RateLimitError(ProviderHTTPError):
    """Too many requests (429); `retry_after` says how long the provider asked to wait."""


class ServerError(ProviderHTTPError):
    """The provider failed on its side (5xx)."""


class ProviderConnectionError(ProviderError):
    """The connection to the provider could not be made or was lost."""


class StreamDisconnectedError(ProviderConnectionError):
    """The connection dropped after the stream had started: the response is incomplete."""


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The provider took too long: to connect (`phase="connect"`) or between chunks (`"idle"`)."""

    def __init__(self, message: str, *, phase: str, provider: str = "", model: str = "") -> None:
        super().__init__(message, provider=provider, model=model)
        self.phase = phase


class StreamProtocolError(ProviderError):
    """The provider sent something that is not a valid chunk; `raw` holds it (truncated)."""

    def __init__(self, message: str, *, raw: str = "", provider: str = "", model: str = "") -> None:
        super().__init__(message, provider=provider, model=model)
        self.raw = raw[:500]


class ProviderStreamError(ProviderError):
    """The provider sent an error event in the middle of a stream."""

    def __init__(
        self, message: str, *, code: str | None = None, provider: str = "", model: str = ""
    ) -> None:
        super().__init__(message, provider=provider, model=model)
        self.code = code


# --- graphs ----------------------------------------------------------------------------------


class GraphError(ChronosError):
    """A graph could not be built or run."""


class InvalidGraphError(GraphError):
    """`compile()` found problems in the graph; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid graph: " + "; ".join(problems))
        self.problems = problems


class NodeError(GraphError):
    """A node raised; the node's own exception is the `__cause__`."""

    def __init__(self, message: str, *, node_id: str, run_id: str = "") -> None:
        super().__init__(message)
        self.node_id = node_id
        self.run_id = run_id


class RouterError(NodeError):
    """A conditional edge's router returned something that names no node of the graph.

    `node_id` is the node the edge leaves, `router` the router's name, `returned` a repr of
    its answer (at most 200 characters). A router that raises is a plain `NodeError`.
    """

    def __init__(self, *, node_id: str, router: str, returned: str, reason: str) -> None:
        super().__init__(f"router {router} of {node_id!r} returned {returned}: {reason}",
                         node_id=node_id)
        self.router = router
        self.returned = returned


class StepLimitError(GraphError):
    """The run took more steps than its limit, which usually means an endless loop."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"run exceeded the step limit of {limit}")
        self.limit = limit


class NodeTimeoutError(GraphError, TimeoutError):
    """One attempt of a node ran longer than the node's `timeout`, in seconds."""

    def __init__(self, node_id: str, timeout: float) -> None:
        super().__init__(f"node {node_id!r} timed out after {timeout:g} s")
        self.node_id = node_id
        self.timeout = timeout


class InterruptNotFound(GraphError):
    """A resume answered interrupts the session is not waiting for; nothing was changed.

    `interrupt_ids` are the ids given that are not pending, `pending_ids` those that are.
    """

    def __init__(self, message: str, *, interrupt_ids: list[str], pending_ids: list[str]) -> None:
        super().__init__(message)
        self.interrupt_ids = interrupt_ids
        self.pending_ids = pending_ids


class RunConflictError(GraphError):
    """Another runner (maybe in another process) is executing this session right now."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} is already running elsewhere")
        self.session_id = session_id


class SessionCompletedError(GraphError):
    """An update was given for a session whose run has completed: a completed run is closed.

    Its final state stays as it is; `Runner.fork_from(checkpoint_id, update)` continues it
    in a new session instead.
    """

    def __init__(self, session_id: str, checkpoint_id: str) -> None:
        super().__init__(
            f"session {session_id!r} has completed: its final state cannot be updated; fork "
            f"it into a new session instead (Runner.fork_from({checkpoint_id!r}, update))"
        )
        self.session_id = session_id
        self.checkpoint_id = checkpoint_id


# --- checkpoint stores -----------------------------------------------------------------------


class StoreError(ChronosError):
    """A checkpoint store failed."""


class CheckpointNotFound(StoreError):
    """No checkpoint exists for the session or checkpoint id asked for."""

    def __init__(self, *, session_id: str | None = None, checkpoint_id: str | None = None) -> None:
        what = f"checkpoint {checkpoint_id!r}" if checkpoint_id else f"session {session_id!r}"
        super().__init__(f"no {what} in the store")
        self.session_id = session_id
        self.checkpoint_id = checkpoint_id


class StateNotSerializable(StoreError):
    """A state value cannot be stored; `key` names the state key that holds it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"state key {key!r} cannot be serialised: {reason}")
        self.key = key


# --- the event broker ------------------------------------------------------------------------


class BrokerError(ChronosError):
    """The event broker failed."""


class InvalidLastEventID(BrokerError, ValueError):
    """A `Last-Event-ID` (header or query parameter) that is not an event id of this broker."""

    def __init__(self, value: str) -> None:
        super().__init__(f"malformed Last-Event-ID: {value[:100]!r}")
        self.value = value[:100]


class SubscriptionExists(BrokerError):
    """A subscription with this id is already open."""

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"subscription {subscription_id!r} is already open")
        self.subscription_id = subscription_id


class SubscriptionOverflow(BrokerError):
    """A subscription with `overflow="disconnect"` fell `max_pending` events behind and was closed.

    Resume it with a new subscription from `last_event_id`, the last event it delivered (None:
    it delivered nothing).
    """

    def __init__(self, subscription_id: str, last_event_id: str | None) -> None:
        super().__init__(
            f"subscription {subscription_id!r} was closed because it read too slowly;"
            f" resume after {last_event_id!r}"
        )
        self.subscription_id = subscription_id
        self.last_event_id = last_event_id


class EventNotSerializable(BrokerError, TypeError):
    """An event's data holds a value JSON cannot carry (e.g. `bytes`); nothing was published.

    `reason` names the value's type (or says what is wrong with it), never the value, which
    may hold a secret.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"event data is not JSON serialisable: {reason}")
        self.reason = reason


class BrokerUnavailable(BrokerError):
    """The service behind the broker (e.g. Redis) cannot be reached."""


# --- the HTTP server ---------------------------------------------------------------------------


class RequestRefused(ChronosError):
    """`chronos.server` refuses a request: answered with `status_code` and `{"detail": ...}`.

    `detail` is safe to show the client: it names the field or id at fault, nothing else.
    """

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class ClientGone(RequestRefused):
    """The client disconnected while sending its request: nothing to answer, not an error."""

    def __init__(self) -> None:
        super().__init__(499, "the client disconnected while sending its request")

"""OpenTelemetry tracing: a span per run, per node attempt and per model call.

```python
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())    # plus an exporter: then every run is traced
```

Off, and free, until the application sets a tracer provider: `tracer()` is asked once per
run and once per model call, never per step or token, and it looks for `opentelemetry` only
among the modules the application imported already, so nothing is imported here when the
`otel` extra is absent or unused.

Spans follow the OpenTelemetry GenAI semantic conventions: a run is `invoke_agent {graph}`
(the graph is the agent), each node attempt `node {node}` beneath it (a retry is a span of
its own; a subgraph's nodes sit beneath the subgraph's node), each model call `chat {model}`
beneath the node that made it, with the request and response models, finish reasons, token
usage as the provider reported it, and `gen_ai.response.time_to_first_chunk`. A failure sets
the span's status with the typed error, recorded as an exception event. Message content is
recorded only when `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (it may hold
personal data).

A run's trace context (its `traceparent`) is kept in its checkpoints' metadata, so that a
resume in any process continues the same trace, and travels in every event the run
publishes to a broker, so that an SSE client can join its own spans to the run's.

A server tells a client the run's trace context before the run starts (its stream's first
event): it starts the run's span itself (`begin_run`, under the caller's `traceparent`),
and `hand_over` lets the runner, started later in that task, take the span as its own.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, cast

import orjson

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from chronos.model import ChatRequest, ChatResponse, ChatStream, Provider, Usage
    from chronos.store import Checkpoint
    from chronos.stream import BrokerProtocol, Event

__all__ = ["CAPTURE_CONTENT_ENV", "TRACE_KEY", "ChatSpan", "NodeSpan", "RunTrace", "begin_run",
           "hand_over", "start_chat", "start_run", "stored_trace", "tracer"]

CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Set to "true" to record prompts and responses on model-call spans (off by default)."""

TRACE_KEY: Final = "trace"
"""Where a checkpoint's `metadata` keeps the W3C `traceparent` of the run that wrote it."""

_SCOPE: Final = "chronos"
# chronos's provider names as the conventions' `gen_ai.provider.name` values.
_PROVIDER_NAMES: Final = {"gemini": "gcp.gemini", "bedrock": "aws.bedrock",
                          "azure_openai": "azure.ai.openai", "openai_responses": "openai"}

_cached: tuple[object, Tracer] | None = None
_UNKNOWN: Final = object()
# A run's span started ahead by its caller, for the next run started in this context.
_HANDED: ContextVar[RunTrace | None] = ContextVar("chronos_run_trace", default=None)


def tracer() -> Tracer | None:
    """The tracer of the provider the application set, or None when tracing is off."""
    global _cached
    module = sys.modules.get("opentelemetry.trace")
    if module is None:  # never imported: no provider can be set
        return None
    # Imported but no provider set (langsmith imports OpenTelemetry): said by the module's
    # global, as `get_tracer_provider()` would say after looking for the environment variable
    # in `os.environ` on every call (a KeyError raised and caught, ~2 us, twice per interrupt
    # round trip); the variable is looked for once. An OpenTelemetry without that global
    # takes the public way.
    if getattr(module, "_TRACER_PROVIDER", _UNKNOWN) is None and not _provider_in_environ():
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _cached is None or _cached[0] is not provider:
        from chronos import __version__

        _cached = provider, provider.get_tracer(_SCOPE, __version__)
    return _cached[1]


@functools.cache
def _provider_in_environ() -> bool:
    """Whether the environment names a tracer provider for OpenTelemetry to load."""
    return "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def stored_trace(checkpoint: Checkpoint | None) -> str:
    """The `traceparent` a checkpoint kept, or "" (none, or written untraced)."""
    if checkpoint is None:
        return ""
    return str(checkpoint.metadata.get(TRACE_KEY, ""))


def _fail(span: Span, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    kind = type(error)
    span.set_attribute("error.type", f"{kind.__module__}.{kind.__qualname__}")
    span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {error}"))
    span.record_exception(error)


def _parent(traceparent: str) -> Context | None:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _traceparent(span: Span) -> str:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, _with(span))
    return carrier.get("traceparent", "")


def _with(span: Span) -> Context:
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(span)


class NodeSpan:
    """One node attempt's span, current (for the node's model calls) until `end`."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        from opentelemetry import context

        self._span = span
        self._token = context.attach(_with(span))

    def end(self, error: BaseException | None) -> None:
        """End the attempt: failed if `error` is given (a retry's attempt included)."""
        from opentelemetry import context

        if error is not None:
            _fail(self._span, error)
        context.detach(self._token)
        self._span.end()


class RunTrace:
    """A run's span, current from `enter` to `end`; see the module docstring."""

    __slots__ = ("_ended", "_span", "_token", "_tracer", "traceparent")

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer = tracer
        self._span = span
        self._token: Token[Context] | None = None
        self._ended = False
        self.traceparent = _traceparent(span)

    def enter(self) -> None:
        """Make the run's span the current one (in this task), until `end`."""
        from opentelemetry import context

        self._token = context.attach(_with(self._span))

    def attempt(self, node_id: str, attempt: int, path: tuple[str, ...]) -> NodeSpan:
        """Start the span of a node's `attempt`-th try (from 1), in the current context."""
        attributes: dict[str, Any] = {"chronos.node.id": node_id, "chronos.node.attempt": attempt}
        if path:
            attributes["chronos.node.path"] = list(path)
        return NodeSpan(self._tracer.start_span(f"node {node_id}", attributes=attributes))

    def end(self, status: str, steps: int, error: BaseException | None) -> None:
        """End the run's span with its final status ("completed", "paused", "failed"...);
        once ended, a later call changes nothing (a server ends a span no runner took)."""
        from opentelemetry import context

        if self._token is not None:
            context.detach(self._token)
            self._token = None
        if self._ended:
            return
        self._ended = True
        self._span.set_attribute("chronos.run.status", status)
        self._span.set_attribute("chronos.run.steps", steps)
        if error is not None:
            _fail(self._span, error)
        self._span.end()

    def broker(self, broker: BrokerProtocol) -> BrokerProtocol:
        """`broker`, its events from this run carrying the run's `traceparent`."""
        return cast("BrokerProtocol", _TracedBroker(broker, self.traceparent))


class _TracedBroker:
    """Adds `traceparent` to each event's data, a dict the run builds afresh per event."""

    __slots__ = ("_broker", "_traceparent")

    def __init__(self, broker: BrokerProtocol, traceparent: str) -> None:
        self._broker = broker
        self._traceparent = traceparent

    def publish(self, event: Event, topic: str | None = None) -> None:
        if type(event.data) is dict:
            event.data["traceparent"] = self._traceparent
        self._broker.publish(event, topic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


def start_run(
    graph_id: str, session_id: str, run_id: str, *, resumed: bool, traceparent: str
) -> RunTrace | None:
    """Start a run's span, or None when tracing is off; or take the one handed over.

    `traceparent` is the trace context a checkpoint kept: a resumed run's span continues
    that trace, under the span of the run that wrote it.
    """
    handed = _HANDED.get()
    if handed is not None:  # its caller chose its parent
        _HANDED.set(None)
        handed._span.set_attributes({"chronos.run.id": run_id, "chronos.run.resumed": resumed})
        return handed
    found = tracer()
    if found is None:
        return None
    return RunTrace(found, _run_span(found, graph_id, session_id, traceparent,
                                     {"chronos.run.id": run_id, "chronos.run.resumed": resumed}))


def begin_run(graph_id: str, session_id: str, *, traceparent: str) -> RunTrace | None:
    """Start a run's span before its runner starts, under `traceparent` (a caller's, or a
    checkpoint's); None when tracing is off. `hand_over` it to the runner, or `end` it."""
    found = tracer()
    if found is None:
        return None
    return RunTrace(found, _run_span(found, graph_id, session_id, traceparent, {}))


def hand_over(trace: RunTrace) -> None:
    """Let the next run started in this context (a task's) take `trace` as its span."""
    _HANDED.set(trace)


def _run_span(found: Tracer, graph_id: str, session_id: str, traceparent: str,
              attributes: dict[str, Any]) -> Span:
    return found.start_span(
        f"invoke_agent {graph_id}", context=_parent(traceparent),
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": graph_id,
                    "gen_ai.conversation.id": session_id, **attributes},
    )


class ChatSpan:
    """One model call's span: `watch` its chunks, then `finish` or `fail` it.

    ```python
    with span:                       # an error leaving the block fails the span
        response = await accumulate(span.watch(chunks))
    span.finish(response)
    ```
    """

    __slots__ = ("_capture", "_first", "_span", "_started")

    def __init__(self, span: Span, capture: bool) -> None:
        self._span = span
        self._capture = capture
        self._started = time.perf_counter()
        self._first = 0.0

    def __enter__(self) -> ChatSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is not None:
            self.fail(error)

    def watch(self, chunks: ChatStream) -> AsyncIterator[ChatResponse]:
        """`chunks`, noting when the first arrives (closing it closes `chunks`)."""
        return _Watched(self, chunks)

    def watch_sync(self, chunks: Iterator[ChatResponse]) -> Iterator[ChatResponse]:
        """`watch` for a sync stream."""
        for chunk in chunks:
            self._arrived()
            yield chunk

    def _arrived(self) -> None:
        if not self._first:
            self._first = time.perf_counter()
            self._span.set_attribute("gen_ai.response.time_to_first_chunk",
                                     self._first - self._started)

    def finish(self, response: ChatResponse) -> None:
        """End the span with what the whole response says."""
        span = self._span
        if response.model:
            span.set_attribute("gen_ai.response.model", response.model)
        if response.id:
            span.set_attribute("gen_ai.response.id", response.id)
        reason = response.raw_stop_reason or (response.stop_reason or "")
        if reason:
            span.set_attribute("gen_ai.response.finish_reasons", [str(reason)])
        usage = response.usage
        if usage is not None:
            for name, count in _usage_attributes(usage):
                if count is not None:
                    span.set_attribute(name, count)
        if self._capture:
            parts = [{"type": "text", "content": response.content}] if response.content else []
            parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                      for c in response.tool_calls]
            span.set_attribute("gen_ai.output.messages", _json(
                [{"role": "assistant", "parts": parts, "finish_reason": str(reason)}]))
        span.end()

    def fail(self, error: BaseException) -> None:
        """End the span as failed with `error`."""
        _fail(self._span, error)
        self._span.end()


def _usage_attributes(usage: Usage) -> tuple[tuple[str, int | None], ...]:
    return (("gen_ai.usage.input_tokens", usage.input_tokens),
            ("gen_ai.usage.output_tokens", usage.output_tokens),
            ("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens),
            ("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens),
            ("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens))


class _Watched:
    # A class, not an async generator: one left suspended by a failing consumer would be
    # finalised later by the event loop; this holds nothing to close.
    __slots__ = ("_call", "_chunks")

    def __init__(self, call: ChatSpan, chunks: ChatStream) -> None:
        self._call = call
        self._chunks = chunks

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> ChatResponse:
        chunk = await self._chunks.__anext__()
        self._call._arrived()
        return chunk

    async def aclose(self) -> None:
        await self._chunks.aclose()


def start_chat(provider: Provider, request: ChatRequest) -> ChatSpan | None:
    """Start a model call's span (a child of the current one), or None when tracing is off."""
    found = tracer()
    if found is None:
        return None
    from opentelemetry.trace import SpanKind

    # A provider of the application's own may lack these; tracing must not fail its calls.
    model = request.model or str(getattr(provider, "model", ""))
    name = str(getattr(provider, "name", ""))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _PROVIDER_NAMES.get(name, name),
        "gen_ai.request.model": model,
    }
    for key, value in (("max_tokens", request.max_tokens), ("temperature", request.temperature),
                       ("top_p", request.top_p), ("seed", request.seed)):
        if value is not None:
            attributes[f"gen_ai.request.{key}"] = value
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    capture = os.environ.get(CAPTURE_CONTENT_ENV, "").lower() == "true"
    if capture:
        attributes["gen_ai.input.messages"] = _json([
            {"role": m.role, "parts": [{"type": "text", "content": m.text}]}
            for m in request.messages])
    span = found.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)
    return ChatSpan(span, capture)


def _json(value: Sequence[Mapping[str, Any]]) -> str:
    return orjson.dumps(value, default=str).decode()

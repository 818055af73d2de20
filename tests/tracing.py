"""An OpenTelemetry SDK tracer provider installed for one test, its spans kept in memory.

The API lets a process set its global tracer provider once; a test needs its own, and the
tests around it none (so that they run untraced, as most applications do). `traced()` sets
one and, on leaving, puts the API back as an untouched process has it: what
`opentelemetry-test-utils`' `reset_trace_globals` does, without the extra dependency.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

__all__ = ["by_name", "traced"]


@contextlib.contextmanager
def traced(*processors: SpanProcessor) -> Iterator[InMemorySpanExporter]:
    """Trace with the SDK while inside: every finished span lands in the exporter yielded."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    _reset()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset()


def _reset() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, ReadableSpan]:
    """Spans by name (each name must be unique)."""
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named

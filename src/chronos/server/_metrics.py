"""What `chronos serve` counts: SSE streams, events, gaps, runs, run and node durations, tokens.

```
curl http://127.0.0.1:8123/metrics      # Prometheus text format
```

Recorded into `prometheus-client` metrics when that package is installed (the `prometheus`
extra; `/metrics` serves them, each app its own registry), and into OpenTelemetry metrics
when the application set a meter provider (`opentelemetry.metrics.set_meter_provider`),
before or after creating the app: the provider is looked up again as each run and each
stream starts, and counted into from then on. Without either, recording is a loop over
nothing.

| Prometheus | OpenTelemetry | what |
| --- | --- | --- |
| `chronos_sse_streams_open` | `chronos.sse.streams.open` | run streams open now (API and dialects) |
| `chronos_sse_events_delivered_total` | `chronos.sse.events.delivered` | SSE events sent to clients |
| `chronos_sse_gaps_total{reason}` | `chronos.sse.gaps` | gaps a client was told of (`overflow`: it read too slowly) |
| `chronos_runs_total{status}` | `chronos.runs` | runs ended: success, error, interrupted |
| `chronos_runs_running` | `chronos.runs.running` | runs executing in this process |
| `chronos_run_duration_seconds{status}` | `chronos.run.duration` | from start to end |
| `chronos_node_duration_seconds{graph,node}` | `chronos.node.duration` | a node's task, retries included |
| `chronos_tokens_total{type}` | `gen_ai.client.token.usage` | model tokens, input and output |
"""  # noqa: E501

from __future__ import annotations

import sys
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from chronos.stream import Event

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

__all__ = ["ServerMetrics"]

# Seconds: a node or a run lasts from a millisecond (no model) to minutes (a long agent).
_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0, 600.0)


class _Recorder(Protocol):
    def streams(self, change: int) -> None: ...
    def delivered(self, count: int) -> None: ...
    def gap(self, reason: str) -> None: ...
    def running(self, change: int) -> None: ...
    def run_ended(self, status: str, seconds: float) -> None: ...
    def node_ended(self, graph_id: str, node_id: str, seconds: float) -> None: ...
    def tokens(self, kind: str, count: int) -> None: ...


class ServerMetrics:
    """The app's metrics; each method records into every configured backend."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry | None = None
        self._prometheus: tuple[_Recorder, ...] = ()
        try:
            prometheus = _Prometheus()
        except ImportError:  # the `prometheus` extra is not installed
            pass
        else:
            self.registry = prometheus.registry
            self._prometheus = (prometheus,)
        self._recorders: tuple[_Recorder, ...] = self._prometheus
        self._meter_provider: MeterProvider | None = None
        self._follow_meter_provider()

    def _follow_meter_provider(self) -> None:
        """Record into the meter provider set now, if it is not the one recorded into."""
        provider = _meter_provider()
        if provider is not self._meter_provider:
            self._meter_provider = provider
            otel = () if provider is None else (_OpenTelemetry(provider),)
            self._recorders = self._prometheus + otel

    def streams(self, change: int) -> None:
        """A run stream opened (+1) or closed (-1)."""
        if change > 0:
            self._follow_meter_provider()
        for recorder in self._recorders:
            recorder.streams(change)

    def delivered(self, count: int) -> None:
        for recorder in self._recorders:
            recorder.delivered(count)

    def gap(self, reason: str) -> None:
        for recorder in self._recorders:
            recorder.gap(reason)

    def running(self, change: int) -> None:
        """A run started (+1: it adopts a meter provider set since the last) or ended (-1)."""
        if change > 0:
            self._follow_meter_provider()
        for recorder in self._recorders:
            recorder.running(change)

    def run_ended(self, status: str, seconds: float) -> None:
        for recorder in self._recorders:
            recorder.run_ended(status, seconds)

    def tokens(self, input_tokens: int | None, output_tokens: int | None) -> None:
        for recorder in self._recorders:
            if input_tokens:
                recorder.tokens("input", input_tokens)
            if output_tokens:
                recorder.tokens("output", output_tokens)

    def run_events(self, graph_id: str) -> Callable[[Event], None]:
        """What sees every event a runner of `graph_id` publishes, to record its node
        durations, into whatever records when the event comes (a meter provider may be set
        later). (Model tokens are counted once per run, from its usage totals: `tokens`.)

        Called in the publisher's hands, once the broker took the event: a reader of the
        run's own stream would be woken for every token, which cost as much as the broker's
        whole publish."""
        return _RunEvents(self, graph_id)


class _RunEvents:
    """Node durations from the events of one graph's runs."""

    def __init__(self, metrics: ServerMetrics, graph_id: str) -> None:
        self._metrics = metrics
        self._graph_id = graph_id
        # By run, then node (and subgraph path): the start times of its tasks still running.
        self._started: dict[str, defaultdict[tuple[str, tuple[str, ...]], deque[float]]] = {}

    def __call__(self, event: Event) -> None:
        if not self._metrics._recorders:
            return
        type = event.type
        payload = event.data
        if type == "node_start":
            started = self._started.setdefault(payload["run_id"], defaultdict(deque))
            started[_node(payload)].append(payload["timestamp"])
        elif type == "node_end":
            tasks = self._started.get(payload["run_id"])
            key = _node(payload)
            if tasks is not None and tasks[key]:
                seconds = payload["timestamp"] - tasks[key].popleft()
                for recorder in self._metrics._recorders:
                    recorder.node_ended(self._graph_id, payload["node_id"], seconds)
        elif type in _RUN_ENDS and not payload["path"]:  # a subgraph's end is not its run's
            self._started.pop(payload["run_id"], None)


_RUN_ENDS: Final = frozenset({"completed", "interrupt", "error", "cancelled"})


def _node(payload: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    return payload["node_id"], tuple(payload["path"])


class _Prometheus:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self._streams = Gauge("chronos_sse_streams_open", "Run streams open now",
                              registry=registry)
        self._delivered = Counter("chronos_sse_events_delivered",
                                  "Events sent to stream clients", registry=registry)
        self._gaps = Counter("chronos_sse_gaps", "Gaps stream clients were told of",
                             ["reason"], registry=registry)
        self._runs = Counter("chronos_runs", "Runs ended, by status", ["status"],
                             registry=registry)
        self._running = Gauge("chronos_runs_running", "Runs executing in this process",
                              registry=registry)
        self._run_seconds = Histogram("chronos_run_duration_seconds", "Run durations",
                                      ["status"], buckets=_BUCKETS, registry=registry)
        self._node_seconds = Histogram("chronos_node_duration_seconds", "Node durations",
                                       ["graph", "node"], buckets=_BUCKETS, registry=registry)
        self._tokens = Counter("chronos_tokens", "Model tokens", ["type"], registry=registry)
        # The labelled children, by their labels: `labels()` checks its arguments and takes
        # a lock on every call, 4 us of the 5 a node's duration took and 8.5 of a run's 10
        # (BENCHMARKS.md, waitrate branch).
        self._by_status: dict[str, tuple[Any, Any]] = {}
        self._by_node: dict[tuple[str, str], Any] = {}
        self._by_kind: dict[str, Any] = {}

    def streams(self, change: int) -> None:
        self._streams.inc(change)

    def delivered(self, count: int) -> None:
        self._delivered.inc(count)

    def gap(self, reason: str) -> None:
        self._gaps.labels(reason).inc()

    def running(self, change: int) -> None:
        self._running.inc(change)

    def run_ended(self, status: str, seconds: float) -> None:
        children = self._by_status.get(status)
        if children is None:
            children = self._by_status[status] = (self._runs.labels(status),
                                                  self._run_seconds.labels(status))
        children[0].inc()
        children[1].observe(seconds)

    def node_ended(self, graph_id: str, node_id: str, seconds: float) -> None:
        key = (graph_id, node_id)
        child = self._by_node.get(key)
        if child is None:
            child = self._by_node[key] = self._node_seconds.labels(graph_id, node_id)
        child.observe(seconds)

    def tokens(self, kind: str, count: int) -> None:
        child = self._by_kind.get(kind)
        if child is None:
            child = self._by_kind[kind] = self._tokens.labels(kind)
        child.inc(count)


def _meter_provider() -> MeterProvider | None:
    """The meter provider the application set, or None."""
    if "opentelemetry.metrics" not in sys.modules:  # never imported: no provider can be set
        return None
    from opentelemetry import metrics
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    provider = metrics.get_meter_provider()
    if isinstance(provider, _ProxyMeterProvider | NoOpMeterProvider):
        return None
    return provider


class _OpenTelemetry:
    def __init__(self, provider: MeterProvider) -> None:
        from chronos import __version__

        meter = provider.get_meter("chronos", __version__)
        self._streams = meter.create_up_down_counter("chronos.sse.streams.open", "{stream}")
        self._delivered = meter.create_counter("chronos.sse.events.delivered", "{event}")
        self._gaps = meter.create_counter("chronos.sse.gaps", "{gap}")
        self._runs = meter.create_counter("chronos.runs", "{run}")
        self._running = meter.create_up_down_counter("chronos.runs.running", "{run}")
        self._run_seconds = meter.create_histogram("chronos.run.duration", "s")
        self._node_seconds = meter.create_histogram("chronos.node.duration", "s")
        self._tokens = meter.create_histogram("gen_ai.client.token.usage", "{token}")

    def streams(self, change: int) -> None:
        self._streams.add(change)

    def delivered(self, count: int) -> None:
        self._delivered.add(count)

    def gap(self, reason: str) -> None:
        self._gaps.add(1, {"reason": reason})

    def running(self, change: int) -> None:
        self._running.add(change)

    def run_ended(self, status: str, seconds: float) -> None:
        self._runs.add(1, {"status": status})
        self._run_seconds.record(seconds, {"status": status})

    def node_ended(self, graph_id: str, node_id: str, seconds: float) -> None:
        self._node_seconds.record(seconds, {"chronos.graph": graph_id, "chronos.node": node_id})

    def tokens(self, kind: str, count: int) -> None:
        self._tokens.record(count, {"gen_ai.token.type": kind, "gen_ai.operation.name": "chat"})

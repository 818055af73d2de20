"""A run's model usage and cost, per node: added to once per model call, kept in checkpoints.

`stream_chat` and `provider.chat` (through `chronos._calls`) add each call's `Usage` (and its
cost, priced when it is added) to the ledger of the run it runs in, under the node that made
it; a retried attempt's calls stay counted, since they were paid for. Each checkpoint records
the totals so far in its metadata, and a run resumed from it (in any process) starts from
them: the totals cover the session's line of history up to that point.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any, Final

from chronos._calls import counting
from chronos.graph._events import CURRENT_NODE
from chronos.model import ChatRequest, ChatResponse, Pricing, Provider, Usage

__all__ = ["USAGE_KEY", "UsageLedger", "count_call", "node_key", "recording"]

USAGE_KEY: Final = "usage"  # the key of the totals in a checkpoint's metadata
_COST: Final = "cost"

_LEDGER: ContextVar[UsageLedger | None] = ContextVar("chronos_graph_usage", default=None)


def node_key(node_id: str, path: tuple[str, ...]) -> str:
    """The breakdown's key of a node: inside a subgraph, its path first (`outer/inner`)."""
    return "/".join((*path, node_id)) if path else node_id


class UsageLedger:
    """Usage and cost by node; sync nodes add from worker threads, hence the lock.

    A checkpoint's (or a session's) totals so far: `UsageLedger.recorded(checkpoint.metadata)`.
    """

    __slots__ = ("_lock", "by_node", "cost_by_node", "pricing")

    def __init__(self, pricing: Pricing | None, record: Mapping[str, Any] | None = None) -> None:
        self.pricing = pricing
        self._lock = threading.Lock()
        self.by_node: dict[str, Usage] = {}
        self.cost_by_node: dict[str, float | None] = {}
        for node, counts in (record or {}).items():
            self.by_node[node] = Usage.from_counts(counts)
            cost = counts.get(_COST)
            self.cost_by_node[node] = None if cost is None else float(cost)

    @classmethod
    def recorded(cls, metadata: Mapping[str, Any]) -> UsageLedger:
        """The usage and cost a checkpoint's `metadata` recorded (empty if none)."""
        return cls(None, metadata.get(USAGE_KEY))

    def __bool__(self) -> bool:
        return bool(self.by_node)

    def add(self, node: str, provider: str, model: str, usage: Usage) -> None:
        """Count one model call of `node`."""
        cost = self.pricing(provider, model, usage) if self.pricing is not None else None
        with self._lock:
            known = node not in self.by_node
            self.by_node[node] = usage if known else self.by_node[node] + usage
            # One unpriced call makes the node's cost unknown: a partial sum would be a guess.
            before = 0.0 if known else self.cost_by_node[node]
            self.cost_by_node[node] = None if cost is None or before is None else before + cost

    def total(self) -> Usage:
        """The run's usage, all nodes added up."""
        total = Usage()
        for usage in self.by_node.values():
            total = total + usage
        return total

    def total_cost(self) -> float | None:
        """The run's cost: None when there was no call, or any could not be priced."""
        costs = list(self.cost_by_node.values())
        if not costs or any(cost is None for cost in costs):
            return None
        return sum(cost for cost in costs if cost is not None)

    def record(self) -> dict[str, dict[str, Any]]:
        """The totals as JSON for a checkpoint's metadata: `{node: {counts..., "cost"}}`."""
        with self._lock:
            return {node: {**usage.counts(), _COST: self.cost_by_node[node]}
                    for node, usage in self.by_node.items()}


def recording(ledger: UsageLedger) -> _Recording:
    """Make `ledger` the one model calls add to, in this context (a run's):
    `with recording(ledger): ...`."""
    return _Recording(ledger)


class _Recording:
    """`recording`: a class, not a generator context manager, as every run enters one (two
    nested generator context managers cost about 6 us per run: BENCHMARKS.md, issue 13)."""

    __slots__ = ("_counting", "_ledger", "_token")

    def __init__(self, ledger: UsageLedger) -> None:
        self._ledger = ledger
        self._counting = counting(count_call)  # `provider.chat` calls too
        self._token: Token[UsageLedger | None] | None = None

    def __enter__(self) -> None:
        self._token = _LEDGER.set(self._ledger)
        self._counting.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._counting.__exit__()
        finally:
            if self._token is not None:
                _LEDGER.reset(self._token)


def count_call(provider: Provider, request: ChatRequest, response: ChatResponse) -> None:
    """Add a model call's usage to the running node's (once per call, never per token)."""
    ledger = _LEDGER.get()
    if ledger is not None and response.usage is not None:
        node = CURRENT_NODE.get()
        # The name the caller chose, which their own `Prices` table is keyed by.
        model = request.model or provider.model or response.model
        ledger.add(node_key(node.node_id, node.path), provider.name, model, response.usage)

"""A run's record: `RunRecord` in the process executing it, `RunInfo` as every process reads it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from chronos._telemetry import RunTrace
from chronos.server._assistants import ServedGraph
from chronos.server._run_request import RunRequest
from chronos.server._state import iso

__all__ = ["TERMINAL", "RunInfo", "RunRecord"]

TERMINAL: Final = frozenset({"success", "error", "interrupted", "timeout"})


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as stored: what `runs.get`, `list`, `join` and `join_stream` read, anywhere."""

    run_id: str
    thread_id: str
    status: str
    described: Mapping[str, Any]
    result: Any
    modes: tuple[str, ...]
    subgraphs: bool
    base_checkpoint_id: str | None  # what it started from: where a rollback returns
    created_at: float
    owner: str  # the server process executing it (`Runs.owner`)
    traceparent: str  # its span's W3C trace context; "" when not traced

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def describe(self) -> dict[str, Any]:
        return dict(self.described)

    def orphaned(self, updated_at: float) -> dict[str, Any]:
        """This run's record once failed because the process executing it is gone."""
        error = {"error": "ServerProcessGone",
                 "message": "the server process executing this run stopped before it ended"}
        described = {**self.described, "status": "error", "updated_at": iso(updated_at)}
        return {"run_id": self.run_id, "thread_id": self.thread_id, "status": "error",
                "described": described, "result": {"__error__": error},
                "modes": list(self.modes), "subgraphs": self.subgraphs,
                "base_checkpoint_id": self.base_checkpoint_id, "created_at": self.created_at,
                "owner": self.owner, "traceparent": self.traceparent}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RunInfo:
        return cls(run_id=value["run_id"], thread_id=value["thread_id"], status=value["status"],
                   described=value["described"], result=value["result"],
                   modes=tuple(value["modes"]), subgraphs=value["subgraphs"],
                   base_checkpoint_id=value["base_checkpoint_id"],
                   created_at=value["created_at"], owner=value.get("owner", ""),
                   traceparent=value.get("traceparent", ""))


@dataclass
class RunRecord:
    """A run in the process executing it: its request, its task, and its outcome so far."""

    run_id: str
    thread_id: str
    temporary: bool  # its thread is a stateless run's, deleted when the run ends
    served: ServedGraph
    request: RunRequest
    created_at: float
    owner: str  # this server process (`Runs.owner`)
    keep_paused: bool = False  # a temporary thread outlives this run if it pauses
    status: str = "pending"  # running, success, error, interrupted
    updated_at: float = 0.0
    values: Any = None  # the thread's values when the run ended
    error: str = ""
    error_type: str = ""
    base_checkpoint_id: str | None = None
    forgotten: bool = False  # rolled back or deleted: its record is gone for good
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    trace: RunTrace | None = None  # its span, started with the record, when tracing is on
    _created: str = field(init=False, repr=False)  # `created_at` in ISO form, as every save has it

    def __post_init__(self) -> None:
        self._created = iso(self.created_at)

    @functools.cached_property
    def _asked(self) -> dict[str, Any]:
        """What the record says of its request, JSON-ready once: every save (three a run) and
        `info` reuse it, rather than re-encoding the request each time to make it plain. Made
        at the first: a dialect's stateless run, never saved, never makes it (its `input` is
        the whole conversation)."""
        return _plain({"metadata": self.request.metadata,
                       "multitask_strategy": self.request.multitask_strategy,
                       "kwargs": self.request.kwargs()})

    @property
    def traceparent(self) -> str:
        return self.trace.traceparent if self.trace is not None else ""

    def describe(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "thread_id": self.thread_id,
                "assistant_id": self.served.assistant_id, "created_at": self._created,
                "updated_at": iso(self.updated_at) if self.updated_at else self._created,
                "status": self.status,
                **self._asked}

    def result(self) -> Any:
        """What `runs.wait` and `runs.join` answer: the final values, or the error."""
        if self.status == "error":
            return {"__error__": {"error": self.error_type, "message": self.error}}
        return self.values

    def to_json(self) -> dict[str, Any]:
        """JSON-ready as it is: the request's part is (`_asked`), and so are the values a run
        ends with (`Runs` stores them so) and the rest (strings, numbers)."""
        return {"run_id": self.run_id, "thread_id": self.thread_id, "status": self.status,
                "described": self.describe(), "result": self.result(),
                "modes": list(self.request.stream_modes),
                "subgraphs": self.request.stream_subgraphs,
                "base_checkpoint_id": self.base_checkpoint_id, "created_at": self.created_at,
                "owner": self.owner, "traceparent": self.traceparent}

    def info(self) -> RunInfo:
        return RunInfo.from_json(self.to_json())


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: what JSON cannot carry (a dialect's objects in `input`) is shown by its repr."""
    plain: dict[str, Any] = orjson.loads(orjson.dumps(value, default=repr))
    return plain

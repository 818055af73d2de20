"""Thread state as the Agent Server API shows it, built from chronos checkpoints (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chronos.store import Checkpoint

__all__ = ["checkpoint_ref", "iso", "thread_state"]


def iso(seconds: float) -> str:
    """Seconds since the epoch as the ISO 8601 timestamp the API uses."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def checkpoint_ref(thread_id: str, checkpoint_id: str | None) -> dict[str, Any]:
    """The API's checkpoint reference (`checkpoint_ns` is "" outside subgraphs)."""
    return {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id,
            "checkpoint_map": None}


def _source(checkpoint: Checkpoint) -> str:
    if checkpoint.ran:
        return "loop"
    return "update" if checkpoint.run_id.startswith("update-") else "input"


def thread_state(thread_id: str, checkpoint: Checkpoint | None) -> dict[str, Any]:
    """`threads.get_state`'s answer for the thread at `checkpoint` (None: nothing run yet).

    A paused checkpoint lists the tasks it waits on; those that called `graph.interrupt()`
    carry its questions (`{"value", "id"}`) in `interrupts`. A static interrupt (an
    interrupt node, or `interrupt_before`) asks nothing, so its `interrupts` are empty.
    """
    if checkpoint is None:
        return {"values": {}, "next": [], "checkpoint": checkpoint_ref(thread_id, None),
                "metadata": {}, "created_at": None, "parent_checkpoint": None, "tasks": [],
                "interrupts": []}
    parent = checkpoint.parent_id
    asked: dict[str, list[dict[str, Any]]] = {}
    for record in checkpoint.interrupts:
        asked.setdefault(str(record.get("task")), []).append(
            {"value": record.get("value"), "id": record.get("id")})
    tasks = [*checkpoint.next, *(f"{node}[{i}]" for i, (node, _) in enumerate(checkpoint.sends))]
    return {
        "values": dict(checkpoint.state),
        "next": list(checkpoint.next),
        "checkpoint": checkpoint_ref(thread_id, checkpoint.id),
        "metadata": {"step": checkpoint.step, "source": _source(checkpoint),
                     "run_id": checkpoint.run_id, "graph_id": checkpoint.graph_id,
                     "thread_id": thread_id, "parents": {}},
        "created_at": iso(checkpoint.created_at),
        "parent_checkpoint": checkpoint_ref(thread_id, parent) if parent else None,
        "tasks": [{"id": f"{checkpoint.id}:{task}", "name": task.split("[")[0],
                   "path": ["__pregel_pull", task.split("[")[0]],
                   "error": checkpoint.error or None, "interrupts": asked.get(task, []),
                   "checkpoint": None, "state": None, "result": None} for task in tasks],
        "interrupts": [i for task in tasks for i in asked.get(task, [])],
    }

"""`interrupt(value)`: pause a run inside a node, ask a question, and get the answer back.

A node may be sync or async and call `interrupt()` at any depth of its own calls, so the only
way out of it is an exception. `NodeInterrupted` derives from `BaseException`, not
`Exception`, so that a node's own `except Exception:` does not swallow the pause.

The node's work up to the call is not kept: on resume the node runs again from its start,
and its `interrupt()` calls are numbered, the answered ones returning their answers in order
(LangGraph's scheme). A node must therefore make the same calls in the same order each time,
and do its side effects after the last of them, or make them idempotent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Final, Literal

from chronos._records import quick_init
from chronos.errors import GraphError, InterruptNotFound
from chronos.graph._events import CURRENT_NODE
from chronos.graph._types import END, START

__all__ = [
    "Interrupt",
    "NodeInterrupted",
    "answering",
    "interrupt",
    "new_interrupt_id",
    "point_key",
    "reset_answers",
    "resolve_resume",
]

_ID_SHAPE: Final = re.compile(r"[0-9a-f]{32}")


@quick_init  # made per question and per resume: its fields set in one step (_records.py)
@dataclass(frozen=True)
class Interrupt:
    """A question a paused run waits on: what `interrupt(value)` asked, and where.

    `id` answers it by name (`runner.resume(session, resume={id: answer})`) when several
    are pending; `node_id` and `path` say which node asked (inside which subgraph nodes),
    `task` which task of the step (the node id, or `node[i]` for the i-th `Send`), and
    `index` which of the node's `interrupt()` calls it was, from 0.

    `point` is "before" or "after" for a static interrupt point (an interrupt node, or a
    node that pauses after it ran) inside a subgraph that runs beside other nodes: it asks
    nothing (`value` is None) and any resume passes it. It is "" for an `interrupt()` call.
    """

    id: str
    value: Any
    node_id: str
    task: str
    index: int
    path: tuple[str, ...] = ()
    point: Literal["", "before", "after"] = ""

    def record(self) -> dict[str, Any]:
        """The JSON-ready form a checkpoint keeps."""
        record = {"id": self.id, "value": self.value, "node_id": self.node_id,
                  "task": self.task, "index": self.index, "path": list(self.path)}
        if self.point:  # absent for `interrupt()` calls, as checkpoints were first written
            record["point"] = self.point
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Interrupt:
        """The interrupt a checkpoint recorded with `record()`."""
        return cls(id=record["id"], value=record["value"], node_id=record["node_id"],
                   task=record["task"], index=record["index"], path=tuple(record["path"]),
                   point=record.get("point", ""))


class NodeInterrupted(BaseException):
    """Raised by `interrupt()` to leave the node; the runner catches it, users never see it."""

    def __init__(self, value: Any, index: int) -> None:
        super().__init__(value, index)
        self.value = value
        self.index = index


@dataclass(slots=True)
class _Answers:
    given: tuple[Any, ...]
    calls: int = 0


_ANSWERS: ContextVar[_Answers | None] = ContextVar("chronos_graph_answers", default=None)


def interrupt(value: Any) -> Any:
    """Pause the run here until a human answers `value`; return their answer.

    ```python
    def review(state):
        answer = graph.interrupt({"question": "Publish this draft?", "draft": state["draft"]})
        return {"approved": answer == "yes"}
    paused = await runner.run("s1", {"draft": "..."})          # paused.interrupts[0].value
    done = await runner.resume("s1", resume="yes")              # review returns approved=True
    ```

    The run pauses with an `interrupt` event and a "paused" checkpoint holding `value`; on
    resume the node runs again from its start and this call returns the answer. Works in
    sync and async nodes and in subgraphs; `value` must be JSON-serialisable to be stored.

    Raises:
        GraphError: called outside a node of a running graph.
    """
    answers = _ANSWERS.get()
    if answers is None:  # a node with nothing to replay: this is its first question
        if CURRENT_NODE.get().node_id == "":
            raise GraphError("graph.interrupt() was called outside a node of a running graph")
        raise NodeInterrupted(value, 0)
    index = answers.calls
    answers.calls = index + 1
    if index < len(answers.given):
        return answers.given[index]
    raise NodeInterrupted(value, index)


def answering(given: tuple[Any, ...]) -> Token[_Answers | None] | None:
    """Make `interrupt()` in this context replay `given` first; a token for `reset_answers`.

    Most nodes have nothing to replay and pay only a lookup: no context change is made
    unless there are answers, or an enclosing node's answers must be hidden.
    """
    if given:
        return _ANSWERS.set(_Answers(given))
    if _ANSWERS.get() is not None:
        return _ANSWERS.set(None)
    return None


def reset_answers(token: Token[_Answers | None] | None) -> None:
    """Undo `answering`."""
    if token is not None:
        _ANSWERS.reset(token)


def new_interrupt_id() -> str:
    """An interrupt id: 32 random hex digits, the shape LangGraph's ids have too.

    What `secrets.token_hex(16)` and `uuid4().hex` hold, without their Python calls around
    the same `os.urandom` (a run id is made the same way: three ids per round trip).
    """
    return os.urandom(16).hex()


def point_key(task: str, point: str) -> str:
    """Where `answers` records that a static interrupt point of `task` was passed.

    Beside the tasks' own keys without ever being one: a key ends in a reserved node id.
    """
    return f"{task}/{START if point == 'before' else END}"


def resolve_resume(resume: Any, pending: Sequence[Interrupt]) -> dict[str, Any]:
    """Which pending interrupt each answer of `resume` goes to, by interrupt id.

    A mapping whose keys all look like interrupt ids answers by id (some or all of them);
    anything else is the answer to the one pending `interrupt()` question (static interrupt
    points ask nothing: any resume passes them).

    Raises:
        InterruptNotFound: nothing is pending, an id is not pending, or several interrupts
            are pending and `resume` does not say which it answers.
    """
    pending_ids = [i.id for i in pending]
    if isinstance(resume, Mapping) and resume and all(
        isinstance(k, str) and _ID_SHAPE.fullmatch(k) for k in resume
    ):
        unknown = sorted(k for k in resume if k not in pending_ids)
        if unknown:
            raise InterruptNotFound(
                f"interrupt id(s) {unknown} are not pending; pending: {pending_ids}",
                interrupt_ids=unknown, pending_ids=pending_ids,
            )
        return dict(resume)
    if not pending:
        raise InterruptNotFound("the session is not waiting on any interrupt",
                                interrupt_ids=[], pending_ids=[])
    questions = [i for i in pending if not i.point]
    if len(questions) > 1:
        raise InterruptNotFound(
            f"{len(questions)} interrupts are pending; resume with {{interrupt_id: answer}}",
            interrupt_ids=[], pending_ids=pending_ids,
        )
    return {questions[0].id: resume} if questions else {}

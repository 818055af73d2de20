"""`Command` and `Send`: a node (or a resume) saying where the run goes, and with what input.

LangGraph's names and meanings: a node returns `Command(update=..., goto=...)` to change the
state and choose its successors in one value; a router or a node returns `Send(node, arg)` to
run `node` on `arg` instead of the graph's state (map-reduce fan-out, one `Send` per item).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Command", "Send", "goto_targets"]

_NO_RESUME: Final[Any] = object()


@dataclass(frozen=True, slots=True)
class Send:
    """Run `node` in the next step with `arg` as its input, instead of the graph's state.

    ```python
    def fan_out(state):
        return [graph.Send("summarise", {"doc": d}) for d in state["docs"]]
    g.add_conditional_edges("split", fan_out)
    ```

    Each `Send` is a task of its own, so one node may run many times in one step; their
    updates merge through the reducers in the order the `Send`s were made. `arg` is a
    mapping, the node's whole input; it is stored in checkpoints, so it must be JSON.
    """

    node: str
    arg: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Command:
    """Update the state, choose the next nodes, or answer an interrupt, in one value.

    ```python
    async def review(state):
        if state["ok"]:
            return graph.Command(update={"status": "approved"}, goto="publish")
        return graph.Command(goto=graph.Send("fix", {"issue": state["issue"]}))
    await runner.resume("session-1", graph.Command(resume="yes"))
    ```

    Returned by a node: `update` is its update, `goto` (a node id, a `Send`, or a list of
    them) runs next in addition to the node's edges. Passed to `Runner.resume`: `resume`
    answers the pending interrupt(s), `update` is applied first, and `goto` replaces the
    step the session would have run next.
    """

    goto: str | Send | Sequence[str | Send] = ()
    update: Mapping[str, Any] | None = None
    resume: Any = _NO_RESUME

    @property
    def has_resume(self) -> bool:
        """Whether `resume` was given (None is a valid answer)."""
        return self.resume is not _NO_RESUME


def goto_targets(goto: str | Send | Sequence[str | Send]) -> tuple[str | Send, ...]:
    """`Command.goto` as a tuple of node ids and `Send`s."""
    if isinstance(goto, (str, Send)):
        return (goto,)
    return tuple(goto)

"""The body of a run request (`runs.stream` / `create` / `wait`), checked field by field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast, get_args

from chronos.errors import RequestRefused
from chronos.graph import Durability, Send
from chronos.server._fields import choice, field, optional_mapping, string_list
from chronos.server._stream_modes import STREAM_MODES

__all__ = ["MULTITASK_STRATEGIES", "RunRequest", "parse_run_request"]

MULTITASK_STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")
_DURABILITIES: Final = get_args(Durability)


@dataclass(frozen=True, slots=True)
class RunRequest:
    assistant_id: str
    input: dict[str, Any] | None
    has_resume: bool  # whether `command.resume` was given (None is an answer too)
    resume: Any  # `command.resume`: the answer(s) to the pending `interrupt()` calls
    update: dict[str, Any]  # `command.update`, merged into the state before the run goes on
    goto: tuple[str | Send, ...]  # `command.goto`: the step to run instead
    stream_modes: tuple[str, ...]
    stream_subgraphs: bool
    interrupt_before: tuple[str, ...]
    interrupt_after: tuple[str, ...]
    metadata: dict[str, Any]
    config: dict[str, Any]
    context: dict[str, Any]
    on_disconnect: str
    multitask_strategy: str
    if_not_exists: str
    stream_resumable: bool
    checkpoint_id: str | None
    on_completion: str  # a stateless run's thread: "delete" when the run ends, or "keep"
    after_seconds: float  # wait this long (as a pending run) before starting
    # When the run writes checkpoints (see `graph.Runner`): "async" unless the body says, as
    # on LangGraph's server, whose SDK clients expect its semantics.
    durability: Durability

    def kwargs(self) -> dict[str, Any]:
        """What the API echoes back as a run's `kwargs`."""
        command = {"resume": self.resume, "update": self.update or None,
                   "goto": [g if isinstance(g, str) else {"node": g.node, "arg": g.arg}
                            for g in self.goto] or None}
        return {"input": self.input,
                "command": command if self.has_resume or self.update or self.goto else None,
                "config": self.config, "context": self.context,
                "stream_mode": list(self.stream_modes),
                "interrupt_before": list(self.interrupt_before) or None,
                "interrupt_after": list(self.interrupt_after) or None,
                "subgraphs": self.stream_subgraphs, "resumable": self.stream_resumable,
                "on_disconnect": self.on_disconnect}


def _goto(value: Any) -> tuple[str | Send, ...]:
    """`command.goto`: a node id, a Send (`{"node", "arg"}`), or a list of them."""
    if value is None:
        return ()
    targets: list[str | Send] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            targets.append(item)
        elif (isinstance(item, dict) and isinstance(item.get("node"), str)
              and isinstance(item.get("arg"), dict)):
            targets.append(Send(item["node"], item["arg"]))
        else:
            raise RequestRefused(422, "field 'command.goto' must be a node name, a Send "
                                '({"node": ..., "arg": {...}}) or a list of them')
    return tuple(targets)


def parse_run_request(body: Mapping[str, Any], *, default_disconnect: str) -> RunRequest:
    """Raises: RequestRefused 422 naming the first field that is wrong."""
    assistant_id = field(body, "assistant_id", str, "")
    if not assistant_id:
        raise RequestRefused(422, "field 'assistant_id' is required")
    input_ = body.get("input")
    if input_ is not None and not isinstance(input_, dict):
        raise RequestRefused(422, "field 'input' must be an object or null")
    command = optional_mapping(body, "command")
    update = command.get("update")
    if update is not None and not isinstance(update, dict):
        raise RequestRefused(422, "field 'command.update' must be an object")
    modes = string_list(body, "stream_mode") or ("values",)
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        raise RequestRefused(422, f"field 'stream_mode' has unsupported modes {unknown}; "
                            f"use {list(STREAM_MODES)}")
    checkpoint_id = field(body, "checkpoint_id", str, "")
    nested = optional_mapping(body, "checkpoint").get("checkpoint_id")
    return RunRequest(
        assistant_id=assistant_id,
        input=input_,
        has_resume="resume" in command,
        resume=command.get("resume"),
        update=dict(update or {}),
        goto=_goto(command.get("goto")),
        stream_modes=tuple(dict.fromkeys(modes)),
        stream_subgraphs=field(body, "stream_subgraphs", bool, False),
        interrupt_before=string_list(body, "interrupt_before"),
        interrupt_after=string_list(body, "interrupt_after"),
        metadata=optional_mapping(body, "metadata"),
        config=optional_mapping(body, "config"),
        context=optional_mapping(body, "context"),
        on_disconnect=choice(body, "on_disconnect", ("continue", "cancel"), default_disconnect),
        multitask_strategy=choice(body, "multitask_strategy", MULTITASK_STRATEGIES, "reject"),
        if_not_exists=choice(body, "if_not_exists", ("reject", "create"), "reject"),
        stream_resumable=field(body, "stream_resumable", bool, False),
        checkpoint_id=checkpoint_id or (nested if isinstance(nested, str) else None),
        on_completion=choice(body, "on_completion", ("delete", "keep"), "delete"),
        after_seconds=_after_seconds(body),
        durability=cast(Durability, choice(body, "durability", _DURABILITIES, "async")),
    )


def _after_seconds(body: Mapping[str, Any]) -> float:
    value = body.get("after_seconds")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RequestRefused(422, "field 'after_seconds' must be a non-negative number")
    return float(value)

"""The live view of a graph's run, drawn on the terminal while `chronos run` or `resume` runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chronos.graph import CompiledGraph, MessageDelta, RunState, StreamEvent
from chronos.graph import Runner as GraphRunner

__all__ = ["RunView", "watch"]


async def watch(
    runner: GraphRunner, view: RunView, console: Console,
    start: Callable[[], Awaitable[RunState]],
) -> RunState:
    """`start()` the runner's next run, showing its events in `view` live on `console`."""
    events = runner.stream()

    async def follow() -> None:
        async for event in events:
            view.update(event)

    try:
        # Refreshed 8 times a second, not once per event: tokens may come by the thousand.
        with Live(view, console=console, refresh_per_second=8, transient=False):
            _, result = await asyncio.gather(follow(), start())
    finally:
        if not console.is_terminal:
            console.line()  # rich ends its last render with a newline only on a terminal
        await events.aclose()
    return result


@dataclass
class _NodeRow:
    status: str = "pending"
    started: float = 0.0
    seconds: float | None = None
    tokens: int = 0
    detail: str = ""


_ICONS = {"pending": "[dim]·[/]", "running": "[yellow]▶[/]", "done": "[green]✓[/]",
          "failed": "[red]✗[/]", "paused": "[blue]⏸[/]"}


class RunView:
    """What `chronos run` shows: a row per node with its status, time and last news, the
    text the running nodes stream, and the run's outcome. Updated by `update(event)`."""

    def __init__(self, compiled: CompiledGraph, session_id: str) -> None:
        self.title = f"graph [bold]{compiled.id}[/] · session {session_id}"
        self.rows: dict[str, _NodeRow] = {name: _NodeRow() for name in compiled.nodes}
        self.text: list[str] = []
        self.outcome = "[yellow]running[/]"
        self.events = 0

    def ran_before(self, names: Iterable[str]) -> None:
        """Show these nodes as done by an earlier run of the session (a resumed one)."""
        for name in names:
            row = self.rows.setdefault(name, _NodeRow())
            row.status, row.detail = "done", "earlier run"

    def update(self, event: StreamEvent) -> None:
        """Take one event of the run into account."""
        self.events += 1
        name = "/".join((*event.path, event.node_id))
        row = self.rows.setdefault(name, _NodeRow()) if event.node_id else None
        kind = event.type
        if row is None:
            pass
        elif kind == "node_start":
            row.status, row.started = "running", event.timestamp
        elif kind == "node_end":
            row.status, row.seconds = "done", event.timestamp - row.started
            changed = sorted(event.data) if isinstance(event.data, Mapping) else []
            row.detail = f"set {', '.join(changed)}" if changed else row.detail
        elif kind == "token":
            data = event.data
            delta = isinstance(data, MessageDelta)
            if not delta or data.usage is None or data.content:  # a usage-only closer is none
                row.tokens += 1
            self.text.append(data.content if delta else str(data))
        elif kind == "custom":
            row.detail = f"{event.name} {_short(event.data)}"
        if kind == "completed":
            self.outcome = "[green]completed[/]"
        elif kind == "interrupt":
            self.outcome = "[blue]paused[/] (interrupt)"
            if row is not None:
                row.status = "paused"
        elif kind in ("error", "cancelled"):
            self.outcome = f"[red]{kind}[/] {escape(event.error)}"
            if row is not None:
                row.status = "failed"

    def __rich__(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        for name, row in self.rows.items():
            seconds = f"{row.seconds:.2f}s" if row.seconds is not None else ""
            tokens = f"{row.tokens} tokens" if row.tokens else ""
            table.add_row(_ICONS[row.status], name, seconds, tokens, escape(row.detail))
        parts: list[Any] = [Text.from_markup(self.title), table]
        if self.text:
            # The last few lines only: the view must fit the terminal while tokens stream.
            tail = "\n".join("".join(self.text).splitlines()[-6:])
            parts.append(Panel(Text(tail), title="streamed", title_align="left"))
        parts.append(Text.from_markup(f"{self.outcome} · {self.events} events"))
        return Group(*parts)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=repr).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"

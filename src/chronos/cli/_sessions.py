"""`chronos sessions` and `chronos checkpoints`: what the checkpoint store holds, as tables."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping
from datetime import datetime

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from chronos.cli._common import Commands, Terminal, add_store_option, store_url
from chronos.errors import CheckpointNotFound
from chronos.graph import RunState, UsageLedger
from chronos.model import Usage
from chronos.store import Checkpoint, MemoryStore, PostgresStore, SessionInfo, SQLiteStore
from chronos.store import from_url as store_from_url

__all__ = ["add_checkpoints", "add_sessions", "read_history", "usage_table"]


def add_sessions(commands: Commands) -> None:
    parser = commands.add_parser(
        "sessions",
        help="list the sessions in the checkpoint store",
        description="List the sessions in the checkpoint store, the most recently active "
        "first: status, last node run, next node, checkpoints, time of the last one, model "
        'tokens (input/output) and cost. "running" is a run still going, or one that crashed: '
        "`chronos resume` continues it.",
    )
    parser.add_argument("--limit", type=int, help="only the N most recent sessions")
    parser.add_argument("--usage", action="store_true",
                        help="instead, each session's model tokens and cost per node and in total")
    add_store_option(parser)
    parser.set_defaults(run=_list_sessions)


def add_checkpoints(commands: Commands) -> None:
    parser = commands.add_parser(
        "checkpoints",
        help="list a session's checkpoints",
        description="List a session's checkpoints, oldest first: the nodes that had just run, "
        "the nodes to run next, and the run's status then.",
    )
    parser.add_argument("session", metavar="SESSION", help="a session id, see `chronos sessions`")
    add_store_option(parser)
    parser.set_defaults(run=_list_checkpoints)


def _open_existing(url: str) -> MemoryStore | SQLiteStore | PostgresStore | None:
    """The store `url` names, or None for a SQLite file that does not exist: reading the
    store must not leave an empty database behind (in the current folder, by default)."""
    checkpoints = store_from_url(url)
    if isinstance(checkpoints, SQLiteStore) and not os.path.exists(checkpoints.path):
        return None
    return checkpoints


async def _read_sessions(url: str, limit: int | None) -> list[SessionInfo]:
    checkpoints = _open_existing(url)
    if checkpoints is None:
        return []
    async with checkpoints:
        return await checkpoints.sessions(limit=limit)


async def read_history(url: str, session_id: str) -> list[Checkpoint]:
    """The checkpoints of a session in the store `url` names, oldest first.

    Raises:
        CheckpointNotFound: the store has no checkpoint of the session.
    """
    checkpoints = _open_existing(url)
    history: list[Checkpoint] = []
    if checkpoints is not None:
        async with checkpoints:
            history = await checkpoints.history(session_id)
    if not history:
        raise CheckpointNotFound(session_id=session_id)
    return history


def _list_sessions(args: argparse.Namespace, terminal: Terminal) -> int:
    sessions = asyncio.run(_read_sessions(store_url(args), args.limit))
    if not sessions:
        terminal.err.print("no sessions in the store", style="dim", highlight=False)
        return 0
    if args.usage:
        table = _table("session", *_USAGE_COLUMNS)
        for s in sessions:
            usage = UsageLedger.recorded(s.metadata)
            _add_usage_rows(table, usage.by_node, usage.cost_by_node, usage.total(),
                            usage.total_cost(), s.session_id)
        _print_table(terminal.out, table)
        return 0
    table = _table("session", "graph", "status", "last node", "next", "checkpoints", "updated",
                   "tokens", "cost")
    for s in sessions:
        usage = UsageLedger.recorded(s.metadata)
        total = usage.total()
        tokens = f"{total.input_tokens or 0}/{total.output_tokens or 0}" if usage else ""
        table.add_row(Text(s.session_id), Text(s.graph_id), _status(s.status),
                      Text(s.ran[-1] if s.ran else ""), Text(", ".join(s.next)),
                      str(s.checkpoints), _time(s.updated_at), tokens,
                      _cost(usage.total_cost()) if usage else "")
    _print_table(terminal.out, table)
    return 0


_USAGE_COLUMNS = ("node", "input", "output", "cached", "reasoning", "cost")


def usage_table(result: RunState) -> Table:
    """Model tokens and cost per node, then in total: what `chronos run` prints at the end."""
    table = _table(*_USAGE_COLUMNS)
    _add_usage_rows(table, result.usage_by_node, result.cost_by_node, result.usage, result.cost)
    return table


def _add_usage_rows(
    table: Table, by_node: Mapping[str, Usage], cost_by_node: Mapping[str, float | None],
    total: Usage, total_cost: float | None, *first: str,
) -> None:
    """A row per node that called a model, then the total (no rows without calls); each row
    starts with the cells `first`."""
    rows = [(node, usage, cost_by_node.get(node)) for node, usage in by_node.items()]
    if rows:
        rows.append(("total", total, total_cost))
    for node, u, cost in rows:
        table.add_row(*first, Text(node, style="bold" if node == "total" else ""),
                      *(_count(n) for n in (u.input_tokens, u.output_tokens, u.cached_tokens,
                                            u.reasoning_tokens)),
                      _cost(cost))


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _cost(dollars: float | None) -> str:
    # "unknown", never "$0": a model without a known price may have cost anything.
    return "unknown" if dollars is None else f"${dollars:.6f}"


def _list_checkpoints(args: argparse.Namespace, terminal: Terminal) -> int:
    history = asyncio.run(read_history(store_url(args), args.session))
    errors = any(c.error for c in history)
    table = _table("step", "checkpoint", "node", "next", "status", "time",
                   *(["error"] if errors else []))
    for c in history:
        table.add_row(str(c.step), Text(c.id), Text(", ".join(c.ran)), Text(", ".join(c.next)),
                      _status(c.status), _time(c.created_at),
                      *([Text(" ".join(c.error.split()))] if errors else []))
    _print_table(terminal.out, table)
    return 0


_STATUS_STYLES = {"running": "yellow", "paused": "blue", "completed": "green", "failed": "red"}


def _table(*columns: str) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for name in columns:
        numeric = name in ("step", "checkpoints", "tokens", "cost", *_USAGE_COLUMNS[1:])
        table.add_column(name.upper(), no_wrap=True, justify="right" if numeric else "left")
    return table


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _print_table(console: Console, table: Table) -> None:
    # A row is one line however wide, even if the terminal wraps it: rich would squeeze the
    # table into the console's width (80 columns when piped), cutting ids that are there to be
    # copied, and grep and awk want a line per row.
    width = Measurement.get(console, console.options.update_width(1 << 16), table).maximum
    saved, console.width = console.width, max(console.width, width)
    try:
        console.print(table)
    finally:
        console.width = saved

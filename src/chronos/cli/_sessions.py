"""`chronos sessions` and `chronos checkpoints`: what the checkpoint store holds, as tables."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from chronos.cli._common import Commands, Terminal, add_store_option, store_url
from chronos.errors import CheckpointNotFound
from chronos.store import Checkpoint, MemoryStore, PostgresStore, SessionInfo, SQLiteStore
from chronos.store import from_url as store_from_url

__all__ = ["add_checkpoints", "add_sessions", "read_history"]


def add_sessions(commands: Commands) -> None:
    parser = commands.add_parser(
        "sessions",
        help="list the sessions in the checkpoint store",
        description="List the sessions in the checkpoint store, the most recently active "
        "first: status, last node run, next node, checkpoints, time of the last one. "
        '"running" is a run still going, or one that crashed: `chronos resume` continues it.',
    )
    parser.add_argument("--limit", type=int, help="only the N most recent sessions")
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
    table = _table("session", "graph", "status", "last node", "next", "checkpoints", "updated")
    for s in sessions:
        table.add_row(Text(s.session_id), Text(s.graph_id), _status(s.status),
                      Text(s.ran[-1] if s.ran else ""), Text(", ".join(s.next)),
                      str(s.checkpoints), _time(s.updated_at))
    _print_table(terminal.out, table)
    return 0


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
        numeric = name in ("step", "checkpoints")
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

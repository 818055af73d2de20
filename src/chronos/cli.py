"""The `chronos` command.

```
chronos chat "Tell me a story about a robot"                 # a local model, streamed
chronos chat --provider openai --model gpt-4o-mini "Hello"   # or any other provider
chronos run myapp.agents:graph --input '{"query": "hi"}'    # a graph's run, live
```

This is the only module that talks to the terminal (with rich); the library never prints.
Each subcommand is a function that adds its parser and a function that runs it; add one to
`_SUBCOMMANDS`. Errors chronos explains (`ChronosError`) are printed as one line, without a
traceback: exit status 2 for configuration, 1 for a provider failure, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chronos import __version__
from chronos.errors import ChronosError, ConfigurationError
from chronos.graph import CompiledGraph, MessageDelta, RunState, StateGraph, StreamEvent
from chronos.graph import Runner as GraphRunner
from chronos.model import ChatRequest, Message, Provider, Usage, provider_from_name
from chronos.model._registry import provider_name_from_environment
from chronos.store import SQLiteStore

__all__ = ["main"]


@dataclass(frozen=True)
class Terminal:
    """Where a subcommand writes: results to `out` (stdout), everything else to `err`."""

    out: Console
    err: Console


Runner = Callable[[argparse.Namespace, Terminal], int]


# --- chronos chat --------------------------------------------------------------------------


def _add_chat(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "chat",
        help="stream a model's answer to a prompt",
        description="Stream a model's answer to the terminal. Without --provider, "
        "CHRONOS_PROVIDER or an API key in the environment, the local llama.cpp model runs.",
    )
    parser.add_argument("prompt", nargs="+", help="what to ask (words are joined by spaces)")
    parser.add_argument(
        "--provider",
        help="openai, anthropic, gemini, ollama, llamacpp, ... (env: CHRONOS_PROVIDER)",
    )
    parser.add_argument(
        "--model", help="model name, or a GGUF path for llamacpp (env: CHRONOS_MODEL)"
    )
    parser.add_argument(
        "--base-url", help="server URL, e.g. an OpenAI-compatible one (env: CHRONOS_BASE_URL)"
    )
    parser.add_argument("--system", help="a system message to send first")
    parser.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed, for reproducible output")
    parser.set_defaults(run=_run_chat)


def _run_chat(args: argparse.Namespace, terminal: Terminal) -> int:
    base_url = args.base_url or os.environ.get("CHRONOS_BASE_URL")
    name = args.provider or provider_name_from_environment()
    if base_url and not args.provider and not os.environ.get("CHRONOS_PROVIDER"):
        name = "openai"  # a bare URL means an OpenAI-compatible server
    provider = provider_from_name(
        name, model=args.model or os.environ.get("CHRONOS_MODEL"), base_url=base_url
    )
    messages = [Message(role="system", content=args.system)] if args.system else []
    messages.append(Message(role="user", content=" ".join(args.prompt)))
    req = ChatRequest(
        messages=messages,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )
    terminal.err.print(f"{provider.name} · {provider.model}", style="dim", highlight=False)
    usage = asyncio.run(_stream_answer(provider, req, terminal.out))
    if usage is not None:
        terminal.err.print(
            f"{usage.input_tokens} prompt tokens, {usage.output_tokens} generated",
            style="dim",
            highlight=False,
        )
    return 0


async def _stream_answer(provider: Provider, req: ChatRequest, out: Console) -> Usage | None:
    usage: Usage | None = None
    printed = False
    try:
        async with provider.stream_chat(req) as stream:
            async for chunk in stream:
                if chunk.content:
                    out.print(chunk.content, end="", markup=False, highlight=False, soft_wrap=True)
                    printed = True
                usage = chunk.usage or usage
    finally:
        if printed:
            out.print()  # the answer's final newline, also after an error or Ctrl-C
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:
            await aclose()
    return usage


# --- chronos run ---------------------------------------------------------------------------


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run a graph and watch its events live",
        description="Run the graph named by MODULE:ATTRIBUTE (a StateGraph or a compiled "
        "graph; the module may be a .py path) with --input as its initial state, showing "
        "each node's progress and streamed tokens live; the final state is printed as JSON.",
    )
    parser.add_argument("target", metavar="MODULE:GRAPH", help="e.g. myapp.agents:graph")
    parser.add_argument("--input", default="{}", help="the initial state, a JSON object")
    parser.add_argument("--session", help="the session id (default: a new one)")
    parser.add_argument("--db", help="a SQLite file for checkpoints, to resume the session later")
    parser.set_defaults(run=_run_graph)


def _load_graph(target: str) -> CompiledGraph:
    """The compiled graph `target` ("package.module:name" or "path/file.py:name") names.

    Raises:
        ConfigurationError: the target is malformed, cannot be imported, or is not a graph.
    """
    module_name, _, attribute = target.rpartition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"expected MODULE:GRAPH, e.g. myapp.agents:graph, not {target!r}")
    try:
        if module_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location("_chronos_run_target", module_name)
            if spec is None or spec.loader is None:
                raise ImportError(f"no such file: {module_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            # As `python -m` and uvicorn do: the user's own modules sit in the current folder.
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except (ImportError, OSError) as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    found = getattr(module, attribute, None)
    if isinstance(found, StateGraph):
        return found.compile()
    if isinstance(found, CompiledGraph):
        return found
    graphs = sorted(name for name, value in vars(module).items()
                    if isinstance(value, (StateGraph, CompiledGraph)))
    what = "not found" if found is None else f"a {type(found).__name__}, not a graph"
    hint = f"; graphs there: {', '.join(graphs)}" if graphs else ""
    raise ConfigurationError(f"{module_name}:{attribute} is {what}{hint}")


def _parse_input(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"--input is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"--input must be a JSON object, not {type(value).__name__}")
    return value


def _run_graph(args: argparse.Namespace, terminal: Terminal) -> int:
    compiled = _load_graph(args.target)
    state = _parse_input(args.input)
    session_id = args.session or f"run-{uuid.uuid4().hex[:12]}"
    result = asyncio.run(_watch_run(compiled, session_id, state, args.db, terminal.err))
    terminal.out.print_json(
        orjson.dumps(dict(result.state), default=repr).decode(), highlight=False
    )
    if result.status == "paused":
        terminal.err.print(f"paused before {', '.join(result.next) or result.node_id}; "
                           f"session {session_id}", highlight=False)
    return 0


async def _watch_run(
    compiled: CompiledGraph, session_id: str, state: dict[str, Any], db: str | None,
    console: Console,
) -> RunState:
    checkpoints = SQLiteStore(db) if db else None
    runner = GraphRunner(compiled, checkpoints)
    view = _RunView(compiled, session_id)
    events = runner.stream()

    async def follow() -> None:
        async for event in events:
            view.update(event)

    try:
        # Refreshed 8 times a second, not once per event: tokens may come by the thousand.
        with Live(view, console=console, refresh_per_second=8, transient=False):
            _, result = await asyncio.gather(follow(), runner.run(session_id, state))
    finally:
        if not console.is_terminal:
            console.line()  # rich ends its last render with a newline only on a terminal
        await events.aclose()
        if checkpoints is not None:
            await checkpoints.aclose()
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


class _RunView:
    """What `chronos run` shows: a row per node with its status, time and last news, the
    text the running nodes stream, and the run's outcome. Updated by `update(event)`."""

    def __init__(self, compiled: CompiledGraph, session_id: str) -> None:
        self.title = f"graph [bold]{compiled.id}[/] · session {session_id}"
        self.rows: dict[str, _NodeRow] = {name: _NodeRow() for name in compiled.nodes}
        self.text: list[str] = []
        self.outcome = "[yellow]running[/]"
        self.events = 0

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
            row.tokens += 1
            data = event.data
            self.text.append(data.content if isinstance(data, MessageDelta) else str(data))
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


# --- the command ---------------------------------------------------------------------------

_SUBCOMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_chat,
    _add_run,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `chronos` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="chronos", description="Stream LLM tokens, graph runs and both over SSE."
    )
    parser.add_argument("--version", action="version", version=f"chronos {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `chronos` with `argv` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    terminal = Terminal(out=Console(), err=Console(stderr=True))
    run: Runner = args.run
    try:
        return run(args, terminal)
    except ConfigurationError as exc:
        _print_error(terminal, exc)
        return 2
    except ChronosError as exc:
        _print_error(terminal, exc)
        return 1
    except KeyboardInterrupt:
        return 130


def _print_error(terminal: Terminal, error: ChronosError) -> None:
    # One line, never wrapped: it may be grepped from a log.
    terminal.err.print("[bold red]error:[/] ", end="")
    terminal.err.print(str(error), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())

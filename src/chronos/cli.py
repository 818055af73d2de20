"""The `chronos` command.

```
chronos chat "Tell me a story about a robot"                 # a local model, streamed
chronos chat --provider openai --model gpt-4o-mini "Hello"   # or any other provider
chronos run myapp.agents:graph --input '{"query": "hi"}'    # a graph's run, live
chronos sessions                                             # the runs in the store
chronos checkpoints SESSION                                  # one run's checkpoints
chronos resume SESSION myapp.agents:graph --update '{"approved": true}'   # continue it
chronos demo                                                 # the live demo, in a browser
```

This is the only module that talks to the terminal (with rich); the library never prints.
Each subcommand is a function that adds its parser and a function that runs it; add one to
`_SUBCOMMANDS`. Errors chronos explains (`ChronosError`) are printed as one line, without a
traceback: exit status 2 for configuration or input, 1 for a failure (a provider, a node, the
store, an unknown session), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from chronos import __version__
from chronos.config import DEFAULT_STORE_URL, STORE_URL_ENV
from chronos.errors import CheckpointNotFound, ChronosError, ConfigurationError
from chronos.graph import CompiledGraph, MessageDelta, RunState, StateGraph, StreamEvent
from chronos.graph import Runner as GraphRunner
from chronos.model import ChatRequest, Message, Provider, Usage, provider_from_name
from chronos.model._registry import provider_name_from_environment
from chronos.store import Checkpoint, MemoryStore, PostgresStore, SessionInfo, SQLiteStore
from chronos.store import from_url as store_from_url

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
    provider = _chosen_provider(args)
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


def _chosen_provider(args: argparse.Namespace) -> Provider:
    """The provider `--provider`, `--model` and `--base-url` (or the environment) name."""
    base_url = args.base_url or os.environ.get("CHRONOS_BASE_URL")
    name = args.provider or provider_name_from_environment()
    if base_url and not args.provider and not os.environ.get("CHRONOS_PROVIDER"):
        name = "openai"  # a bare URL means an OpenAI-compatible server
    return provider_from_name(
        name, model=args.model or os.environ.get("CHRONOS_MODEL"), base_url=base_url
    )


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
    _add_store_option(parser)
    parser.set_defaults(run=_run_graph)


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="URL",
        help=f"the checkpoint store: sqlite:///FILE, postgresql://..., memory:// "
        f"(env: {STORE_URL_ENV}; default {DEFAULT_STORE_URL})",
    )


def _store_url(args: argparse.Namespace) -> str:
    url: str = args.store or os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL
    return url


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


def _parse_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{option} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{option} must be a JSON object, not {type(value).__name__}")
    return value


def _run_graph(args: argparse.Namespace, terminal: Terminal) -> int:
    compiled = _load_graph(args.target)
    state = _parse_object(args.input, "--input")
    session_id = args.session or f"run-{uuid.uuid4().hex[:12]}"
    checkpoints = store_from_url(_store_url(args))
    view = _RunView(compiled, session_id)

    async def run() -> RunState:
        async with checkpoints:
            runner = GraphRunner(compiled, checkpoints)
            return await _watch(runner, view, terminal.err, lambda: runner.run(session_id, state))

    _print_outcome(asyncio.run(run()), args, terminal)
    return 0


def _print_outcome(result: RunState, args: argparse.Namespace, terminal: Terminal) -> None:
    terminal.out.print_json(
        orjson.dumps(dict(result.state), default=repr).decode(), highlight=False
    )
    if result.status != "paused":
        return
    paused = f"paused before {', '.join(result.next) or result.node_id}"
    if _store_url(args).lower().startswith("memory:"):
        hint = "the memory:// store keeps nothing to resume from"
    else:
        store = " --store URL" if args.store else ""
        hint = (f"continue with: chronos resume {result.session_id} {args.target} "
                f"[--update JSON]{store}")
    terminal.err.print(f"{paused}; {hint}", markup=False, highlight=False, soft_wrap=True)


async def _watch(
    runner: GraphRunner, view: _RunView, console: Console,
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


class _RunView:
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


# --- chronos sessions, checkpoints, resume ------------------------------------------------


def _add_sessions(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "sessions",
        help="list the sessions in the checkpoint store",
        description="List the sessions in the checkpoint store, the most recently active "
        "first: status, last node run, next node, checkpoints, time of the last one. "
        '"running" is a run still going, or one that crashed: `chronos resume` continues it.',
    )
    parser.add_argument("--limit", type=int, help="only the N most recent sessions")
    _add_store_option(parser)
    parser.set_defaults(run=_list_sessions)


def _add_checkpoints(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "checkpoints",
        help="list a session's checkpoints",
        description="List a session's checkpoints, oldest first: the nodes that had just run, "
        "the nodes to run next, and the run's status then.",
    )
    parser.add_argument("session", metavar="SESSION", help="a session id, see `chronos sessions`")
    _add_store_option(parser)
    parser.set_defaults(run=_list_checkpoints)


def _add_resume(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "resume",
        help="continue a paused or crashed run, live",
        description="Continue SESSION from its latest checkpoint with the graph named by "
        "MODULE:GRAPH (as for `chronos run`): a paused run at its interrupt node, after "
        "--update is merged into its state; a crashed or failed one at the step in flight. "
        "The final state is printed as JSON.",
    )
    parser.add_argument("session", metavar="SESSION", help="a session id, see `chronos sessions`")
    parser.add_argument("target", metavar="MODULE:GRAPH", help="e.g. myapp.agents:graph")
    parser.add_argument("--update", help='merged into the state first, a JSON object, e.g. '
                        '\'{"approved": true}\'')
    _add_store_option(parser)
    parser.set_defaults(run=_resume)


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


async def _read_history(url: str, session_id: str) -> list[Checkpoint]:
    checkpoints = _open_existing(url)
    history: list[Checkpoint] = []
    if checkpoints is not None:
        async with checkpoints:
            history = await checkpoints.history(session_id)
    if not history:
        raise CheckpointNotFound(session_id=session_id)
    return history


def _list_sessions(args: argparse.Namespace, terminal: Terminal) -> int:
    sessions = asyncio.run(_read_sessions(_store_url(args), args.limit))
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
    history = asyncio.run(_read_history(_store_url(args), args.session))
    errors = any(c.error for c in history)
    table = _table("step", "checkpoint", "node", "next", "status", "time",
                   *(["error"] if errors else []))
    for c in history:
        table.add_row(str(c.step), Text(c.id), Text(", ".join(c.ran)), Text(", ".join(c.next)),
                      _status(c.status), _time(c.created_at),
                      *([Text(" ".join(c.error.split()))] if errors else []))
    _print_table(terminal.out, table)
    return 0


def _resume(args: argparse.Namespace, terminal: Terminal) -> int:
    compiled = _load_graph(args.target)
    update = _parse_object(args.update, "--update") if args.update is not None else None
    url = _store_url(args)
    # Read first: an unknown session is an error before anything is drawn or created.
    history = asyncio.run(_read_history(url, args.session))
    if history[-1].graph_id != compiled.id:
        raise ConfigurationError(f"session {args.session!r} is a run of graph "
                                 f"{history[-1].graph_id!r}, not {compiled.id!r} ({args.target})")
    if history[-1].status == "completed":
        terminal.err.print("the session has completed already; nothing to run",
                           style="dim", highlight=False)
    checkpoints = store_from_url(url)
    view = _RunView(compiled, args.session)
    view.ran_before(name for c in history for name in c.ran)

    async def resume() -> RunState:
        async with checkpoints:
            runner = GraphRunner(compiled, checkpoints)
            return await _watch(runner, view, terminal.err,
                                lambda: runner.resume(args.session, update))

    _print_outcome(asyncio.run(resume()), args, terminal)
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


# --- chronos demo --------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="watch an agent graph and its model's tokens live in the browser",
        description="Serve a page on which a request runs a small agent graph live: classify, "
        "draft (the model's tokens stream in), a review you approve or reject, finalize. "
        "Without --provider, CHRONOS_PROVIDER or an API key in the environment, the local "
        "llama.cpp model runs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
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
    parser.add_argument("--max-tokens", type=int, default=200, help="longest draft (200)")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed, for reproducible drafts")
    _add_store_option(parser)
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace, terminal: Terminal) -> int:
    from chronos import demo  # the web stack loads for this command only

    provider = _chosen_provider(args)
    sock = demo.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{sock.getsockname()[1]}/"

    def ready() -> None:
        terminal.err.print(f"{provider.name} · {provider.model}", style="dim", highlight=False)
        terminal.out.print(f"chronos demo: open {url}  (Ctrl-C to stop)", highlight=False)

    async def serve() -> None:
        checkpoints = store_from_url(_store_url(args))
        app = demo.create_app(provider, checkpoints, max_tokens=args.max_tokens,
                              temperature=args.temperature, seed=args.seed)
        try:
            await demo.serve(app, sock, on_ready=ready)
        finally:
            await checkpoints.aclose()
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()

    try:
        asyncio.run(serve())
    finally:
        sock.close()
    return 0


# --- the command ---------------------------------------------------------------------------

_SUBCOMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_chat,
    _add_run,
    _add_sessions,
    _add_checkpoints,
    _add_resume,
    _add_demo,
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

"""`chronos run` and `chronos resume`: a graph's run, watched live, its final state printed."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import uuid
from typing import Any

import orjson

from chronos.cli._common import Commands, Terminal, add_store_option, store_url
from chronos.cli._live import RunView, watch
from chronos.cli._sessions import read_history, usage_table
from chronos.errors import ConfigurationError, SessionCompletedError
from chronos.graph import CompiledGraph, RunState, StateGraph
from chronos.graph import Runner as GraphRunner
from chronos.store import from_url as store_from_url

__all__ = ["add_resume", "add_run"]


def add_run(commands: Commands) -> None:
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
    add_store_option(parser)
    parser.set_defaults(run=_run_graph)


def add_resume(commands: Commands) -> None:
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
    add_store_option(parser)
    parser.set_defaults(run=_resume)


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
    checkpoints = store_from_url(store_url(args))
    view = RunView(compiled, session_id)

    async def run() -> RunState:
        async with checkpoints:
            runner = GraphRunner(compiled, checkpoints)
            return await watch(runner, view, terminal.err, lambda: runner.run(session_id, state))

    _print_outcome(asyncio.run(run()), args, terminal)
    return 0


def _resume(args: argparse.Namespace, terminal: Terminal) -> int:
    compiled = _load_graph(args.target)
    update = _parse_object(args.update, "--update") if args.update is not None else None
    url = store_url(args)
    # Read first: an unknown session is an error before anything is drawn or created.
    history = asyncio.run(read_history(url, args.session))
    if history[-1].graph_id != compiled.id:
        raise ConfigurationError(f"session {args.session!r} is a run of graph "
                                 f"{history[-1].graph_id!r}, not {compiled.id!r} ({args.target})")
    if history[-1].status == "completed":
        if update:  # a completed run is closed: what the runner would refuse, before drawing
            raise SessionCompletedError(args.session, history[-1].id)
        terminal.err.print("the session has completed already; nothing to run",
                           style="dim", highlight=False)
    checkpoints = store_from_url(url)
    view = RunView(compiled, args.session)
    view.ran_before(name for c in history for name in c.ran)

    async def resume() -> RunState:
        async with checkpoints:
            runner = GraphRunner(compiled, checkpoints)
            return await watch(runner, view, terminal.err,
                               lambda: runner.resume(args.session, update))

    _print_outcome(asyncio.run(resume()), args, terminal)
    return 0


def _print_outcome(result: RunState, args: argparse.Namespace, terminal: Terminal) -> None:
    terminal.out.print_json(
        orjson.dumps(dict(result.state), default=repr).decode(), highlight=False
    )
    if result.usage_by_node:  # on stderr with the live view: stdout stays the state's JSON
        terminal.err.print(usage_table(result))
    if result.status != "paused":
        return
    paused = f"paused before {', '.join(result.next) or result.node_id}"
    if store_url(args).lower().startswith("memory:"):
        hint = "the memory:// store keeps nothing to resume from"
    else:
        store = " --store URL" if args.store else ""
        hint = (f"continue with: chronos resume {result.session_id} {args.target} "
                f"[--update JSON]{store}")
    terminal.err.print(f"{paused}; {hint}", markup=False, highlight=False, soft_wrap=True)

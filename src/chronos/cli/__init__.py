"""The `chronos` command.

```
chronos chat "Tell me a story about a robot"                 # a local model, streamed
chronos chat --provider openai --model gpt-4o-mini "Hello"   # or any other provider
chronos run myapp.agents:graph --input '{"query": "hi"}'    # a graph's run, live
chronos sessions                                             # the runs in the store
chronos checkpoints SESSION                                  # one run's checkpoints
chronos resume SESSION myapp.agents:graph --update '{"approved": true}'   # continue it
chronos demo                                                 # the live demo, in a browser
chronos serve myapp.agents:graph --port 8123                 # graphs behind the Agent Server API
```

This is the only package that talks to the terminal (with rich); the library never prints.
Each subcommand is a function that adds its parser and a function that runs it, in a module
of its own (`_chat`, `_run`, `_sessions`, `_demo`); add one to `_SUBCOMMANDS`. Errors chronos
explains (`ChronosError`) are printed as one line, without a traceback: exit status 2 for
configuration or input, 1 for a failure (a provider, a node, the store, an unknown session),
130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from rich.console import Console

from chronos import __version__
from chronos.cli import _chat, _common, _demo, _run, _serve, _sessions
from chronos.cli._common import Terminal
from chronos.errors import ChronosError, ConfigurationError

__all__ = ["Runner", "Terminal", "build_parser", "main"]

Runner = Callable[[argparse.Namespace, Terminal], int]
"""What a subcommand's parser sets as its `run` default: runs it, returns the exit status."""

_SUBCOMMANDS: Sequence[Callable[[_common.Commands], None]] = (
    _chat.add_chat,
    _run.add_run,
    _sessions.add_sessions,
    _sessions.add_checkpoints,
    _run.add_resume,
    _demo.add_demo,
    _serve.add_serve,
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


# Reprs, docs and pickles name the public path (`chronos.cli.X`), not the private module.
# (A mypyc-compiled function has `__module__` None: left as it is.)
for _name in __all__:
    if (getattr(globals()[_name], "__module__", None) or "").startswith(__name__ + "."):
        globals()[_name].__module__ = __name__

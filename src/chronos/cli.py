"""The `chronos` command.

```
chronos chat "Tell me a story about a robot"                 # a local model, streamed
chronos chat --provider openai --model gpt-4o-mini "Hello"   # or any other provider
```

This is the only module that talks to the terminal (with rich); the library never prints.
Each subcommand is a function that adds its parser and a function that runs it; add one to
`_SUBCOMMANDS`. Errors chronos explains (`ChronosError`) are printed as one line, without a
traceback: exit status 2 for configuration, 1 for a provider failure, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console

from chronos import __version__
from chronos.errors import ChronosError, ConfigurationError
from chronos.model import ChatRequest, Message, Provider, Usage, provider_from_name
from chronos.model._registry import provider_name_from_environment

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


# --- the command ---------------------------------------------------------------------------

_SUBCOMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    _add_chat,
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

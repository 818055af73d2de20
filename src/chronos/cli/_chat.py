"""`chronos chat`: stream a model's answer to a prompt."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console

from chronos.cli._common import (
    Commands,
    Terminal,
    aclose_provider,
    add_provider_options,
    chosen_provider,
)
from chronos.model import ChatRequest, Message, Provider, Usage

__all__ = ["add_chat"]


def add_chat(commands: Commands) -> None:
    parser = commands.add_parser(
        "chat",
        help="stream a model's answer to a prompt",
        description="Stream a model's answer to the terminal. Without --provider, "
        "CHRONOS_PROVIDER or an API key in the environment, the local llama.cpp model runs.",
    )
    parser.add_argument("prompt", nargs="+", help="what to ask (words are joined by spaces)")
    add_provider_options(parser)
    parser.add_argument("--system", help="a system message to send first")
    parser.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed, for reproducible output")
    parser.set_defaults(run=_run_chat)


def _run_chat(args: argparse.Namespace, terminal: Terminal) -> int:
    provider = chosen_provider(args)
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
        await aclose_provider(provider)
    return usage

"""What several subcommands share: the terminal, the provider options, the store option."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TypeAlias

from rich.console import Console

from chronos.config import DEFAULT_STORE_URL, STORE_URL_ENV
from chronos.model import Provider, provider_from_name, provider_name_from_environment

__all__ = [
    "Commands",
    "Terminal",
    "aclose_provider",
    "add_provider_options",
    "add_store_option",
    "chosen_provider",
    "store_url",
]

# Quoted: argparse's class is generic for type checkers only.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What a subcommand's `add_...` function adds its parser to."""


@dataclass(frozen=True)
class Terminal:
    """Where a subcommand writes: results to `out` (stdout), everything else to `err`."""

    out: Console
    err: Console


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    """`--provider`, `--model` and `--base-url`, read by `chosen_provider`."""
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


def chosen_provider(args: argparse.Namespace) -> Provider:
    """The provider `--provider`, `--model` and `--base-url` (or the environment) name."""
    base_url = args.base_url or os.environ.get("CHRONOS_BASE_URL")
    name = args.provider or provider_name_from_environment()
    if base_url and not args.provider and not os.environ.get("CHRONOS_PROVIDER"):
        name = "openai"  # a bare URL means an OpenAI-compatible server
    return provider_from_name(
        name, model=args.model or os.environ.get("CHRONOS_MODEL"), base_url=base_url
    )


async def aclose_provider(provider: Provider) -> None:
    """Release what the provider holds (a client, a loaded model), if it holds anything."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """`--store URL`, read by `store_url`."""
    parser.add_argument(
        "--store", metavar="URL",
        help=f"the checkpoint store: sqlite:///FILE, postgresql://..., memory:// "
        f"(env: {STORE_URL_ENV}; default {DEFAULT_STORE_URL})",
    )


def store_url(args: argparse.Namespace) -> str:
    """The store `--store`, the environment or the default names."""
    url: str = args.store or os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL
    return url

"""`chronos demo`: serve the live demo page."""

from __future__ import annotations

import argparse
import asyncio

from chronos.cli._common import (
    Commands,
    Terminal,
    aclose_provider,
    add_provider_options,
    add_store_option,
    chosen_provider,
    store_url,
)
from chronos.store import from_url as store_from_url

__all__ = ["add_demo"]


def add_demo(commands: Commands) -> None:
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
    add_provider_options(parser)
    parser.add_argument("--max-tokens", type=int, default=200, help="longest draft (200)")
    parser.add_argument("--temperature", type=float, help="sampling temperature")
    parser.add_argument("--seed", type=int, help="sampling seed, for reproducible drafts")
    add_store_option(parser)
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace, terminal: Terminal) -> int:
    from chronos import demo  # the web stack loads for this command only

    provider = chosen_provider(args)
    sock = demo.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{sock.getsockname()[1]}/"

    def ready() -> None:
        terminal.err.print(f"{provider.name} · {provider.model}", style="dim", highlight=False)
        terminal.out.print(f"chronos demo: open {url}  (Ctrl-C to stop)", highlight=False)

    async def serve() -> None:
        checkpoints = store_from_url(store_url(args))
        app = demo.create_app(provider, checkpoints, max_tokens=args.max_tokens,
                              temperature=args.temperature, seed=args.seed)
        try:
            await demo.serve(app, sock, on_ready=ready)
        finally:
            await checkpoints.aclose()
            await aclose_provider(provider)

    try:
        asyncio.run(serve())
    finally:
        sock.close()
    return 0

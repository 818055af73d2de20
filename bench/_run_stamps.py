"""Stamps on a served run's way from its start to its first token, for the stage benches
(`ttft_stages.py` over HTTP, `stateless_run_path.py` in process).

`stamp_run_path(stamp)` wraps, in the checkout being measured, the OpenAI dialect's
`start_run`, `Runs.start` (and its return), the run's task, `call_runner`, the broker's
publication of the run's start and of tokens, and the dialect's reader receiving a batch
with a token: each calls `stamp(label)`. A name a checkout does not have is left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any


def stamp_run_path(stamp: Callable[[str], None]) -> None:
    import chronos.server._runs as runs_module
    import chronos.server.dialects.openai as openai_module
    from chronos.server.dialects._run import RunSource
    from chronos.stream import Broker

    def wrap(owner: Any, name: str, label: str, end_label: str | None = None) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            stamp(label)
            try:
                return await original(*args, **kwargs)
            finally:
                if end_label is not None:
                    stamp(end_label)

        setattr(owner, name, wrapped)

    wrap(openai_module, "start_run", "start_run")
    wrap(runs_module.Runs, "start", "runs_start", "runs_start_end")
    wrap(runs_module.Runs, "_execute", "execute")
    wrap(runs_module, "call_runner", "call_runner")
    publish = Broker.publish

    def stamped_publish(self: Any, event: Any, topic: str | None = None) -> None:
        if event.type in ("token", "run_start"):
            stamp(f"{event.type}_publish")
        publish(self, event, topic)

    Broker.publish = stamped_publish  # type: ignore[method-assign]
    batches = RunSource.batches

    async def stamped_batches(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for batch in batches(self, *args, **kwargs):
            if any(e.type == "token" for e in batch):
                stamp("token_batch")
            yield batch

    RunSource.batches = stamped_batches  # type: ignore[method-assign]

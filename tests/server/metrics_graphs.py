"""A graph the metrics test serves: each run holds in `hold` while a gate file exists."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from chronos import graph
from chronos.stream import emit


async def _hold(state: dict[str, Any]) -> dict[str, Any]:
    emit("holding", {"run": state["n"]})
    # Async, not in a worker thread: the pool's few threads could not hold every run at once.
    # The gate is a file the test (another process) removes: polled, no event to wait on.
    while os.path.exists(state["gate"]):  # noqa: ASYNC110, ASYNC240 (a local file's stat)
        await asyncio.sleep(0.01)
    return {}


async def _finish(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("fail"):
        raise RuntimeError("finish failed on purpose")
    for word in ("a", "b", "c"):
        emit("word", {"word": word})
    return {"done": True}


held = graph.StateGraph("held").add_node("hold", _hold).add_node("finish", _finish)
held.set_entry_point("hold").add_edge("hold", "finish").set_finish_point("finish")

"""A graph the metrics test serves: each run holds in `hold` while a gate file exists, then
`finish` calls a canned model (whose usage the metrics count)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from typing import Any

from chronos import graph
from chronos.graph import emit
from chronos.model import BaseProvider, ChatRequest, ChatResponse, Message, Usage

USAGE = Usage(input_tokens=7, output_tokens=3, total_tokens=10)


class Canned(BaseProvider):
    """A model in the process: three words, then the usage a vendor reports last."""

    name = "canned"
    model = "canned-1"

    async def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
        for word in ("a", " b", " c"):
            yield ChatResponse(content=word, delta=True)
        yield ChatResponse(delta=True, usage=USAGE)

    async def aclose(self) -> None:
        pass


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
    said = await graph.stream_chat(Canned(), ChatRequest(messages=[Message("user", "hi")]))
    return {"done": said.content}


held = graph.StateGraph("held").add_node("hold", _hold).add_node("finish", _finish)
held.set_entry_point("hold").add_edge("hold", "finish").set_finish_point("finish")

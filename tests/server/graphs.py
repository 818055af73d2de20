"""The Chronos graphs `chronos serve` runs in the conformance tests and the benchmark.

`agent` is the twin of `reference_graphs.agent` (served by `langgraph dev`), written with
`chronos.graph`: three nodes, a custom event from each, and the middle node's tokens streamed
from a model (a provider that streams a fixed text, as the reference's chat model does; with
`model_url` in the input, `OpenAIProvider` streaming from that server, the tests' replay
server).
Serve it with `chronos serve tests.server.graphs:agent`.

`review` pauses with `interrupt(payload)` when the input asks for a review (`ask_review`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from chronos import graph, model
from chronos.graph import emit
from chronos.model.openai import OpenAIProvider
from tests.server.draft import TOKEN_COUNT, draft_tokens


class _ScriptedProvider(model.BaseProvider):
    """Streams `draft_tokens(topic)` for the topic in the last message, `token_delay` seconds
    apart (the tests that cancel or interrupt a run need one that lasts); no I/O."""

    def __init__(self, token_delay: float) -> None:
        self._token_delay = token_delay

    async def _stream(self, req: model.ChatRequest) -> AsyncGenerator[model.ChatResponse, None]:
        for token in draft_tokens(req.messages[-1].content):
            yield model.ChatResponse(content=token, delta=True)
            # A real provider yields to the loop between network reads; so does this one.
            await asyncio.sleep(self._token_delay)

    async def aclose(self) -> None:
        return None


async def plan(state: dict[str, Any]) -> dict[str, Any]:
    emit("custom", {"node": "plan", "topic": state["topic"]})
    return {"steps": ["plan"]}


async def write(state: dict[str, Any]) -> dict[str, Any]:
    emit("custom", {"node": "write"})
    request = model.ChatRequest(messages=[model.Message(role="user", content=state["topic"])])
    provider: model.Provider = _ScriptedProvider(state.get("token_delay", 0.0))
    if "model_url" in state:
        provider = OpenAIProvider("gpt-x", base_url=state["model_url"], api_key="test")
    async with provider:
        response = await graph.stream_chat(provider, request)
    return {"steps": ["write"], "draft": response.content}


async def review(state: dict[str, Any]) -> dict[str, Any]:
    emit("custom", {"node": "review"})
    verdict = "ok"
    if state.get("ask_review"):
        verdict = str(graph.interrupt({"question": "approve?", "draft_tokens": TOKEN_COUNT}))
    return {"steps": ["review"], "verdict": verdict}


_builder = graph.StateGraph("agent", reducers={"steps": graph.append})
_builder.add_node("plan", plan).add_node("write", write).add_node("review", review)
_builder.set_entry_point("plan").add_edge("plan", "write").add_edge("write", "review")
_builder.set_finish_point("review")
agent = _builder.compile()

"""A process that runs or resumes a graph whose nodes call a model, for the usage tests.

    python -m tests.graph.usage_worker run|resume sqlite|postgres LOCATION BASE_URL

"ask" calls the model, the run pauses before "approve", then "answer" calls it again. The
model is an OpenAI-compatible server at BASE_URL (the test's replay server). Prints the
result's usage totals as JSON.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from chronos import graph, model
from chronos.model.openai import OpenAIProvider
from chronos.store import CheckpointStore, PostgresStore, SQLiteStore
from tests.store.backends import POSTGRES_URL

REQUEST = model.ChatRequest(messages=[model.Message(role="user", content="Hi")])


def build(provider: OpenAIProvider) -> graph.CompiledGraph:
    async def ask(state: dict[str, Any]) -> dict[str, Any]:
        return {"draft": (await graph.stream_chat(provider, REQUEST)).content}

    async def answer(state: dict[str, Any]) -> dict[str, Any]:
        return {"final": (await graph.stream_chat(provider, REQUEST)).content}

    return (
        graph.StateGraph("usage-across-processes")
        .add_node("ask", ask).add_interrupt_node("approve").add_node("answer", answer)
        .set_entry_point("ask").add_edge("ask", "approve").add_edge("approve", "answer")
        .set_finish_point("answer").compile()
    )


def open_store(kind: str, location: str) -> CheckpointStore:
    if kind == "sqlite":
        return SQLiteStore(location)
    return PostgresStore(POSTGRES_URL, table=location)


def totals(result: graph.RunState) -> dict[str, Any]:
    return {
        "status": result.status,
        "usage": result.usage.counts(),
        "by_node": {node: usage.counts() for node, usage in result.usage_by_node.items()},
        "cost": result.cost,
        "cost_by_node": dict(result.cost_by_node),
    }


async def main(command: str, kind: str, location: str, base_url: str) -> None:
    async with OpenAIProvider("gpt-4o", base_url=base_url, api_key="k") as provider, \
            open_store(kind, location) as checkpoints:
        runner = graph.Runner(build(provider), checkpoints)
        if command == "run":
            result = await runner.run("s", {})
        else:
            result = await runner.resume("s", {"approved": True})
    print(orjson.dumps(totals(result)).decode())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))

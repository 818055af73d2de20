"""The graphs `chronos serve` runs for the OpenAI dialect's tests (each takes `messages`).

- `replay`: streams a model's answer, from `OpenAIProvider` pointed at the URL the last
  message holds (a test's script on the replay server of recorded vendor streams), and adds
  the assistant message to the state.
- `plain`: streams nothing; answers `echo: <last message>` in its final state.
- `failing`: its node raises.
- `slow`: streams a token every 50 ms for a minute; if it is cancelled, it creates the file
  the last message names, so a test can see the cancel from outside the server.
- `asking`: streams "Draft ready.", emits a custom `progress` event, then asks
  `graph.interrupt({"question": "publish?"})` and answers `published: <answer>` (unstreamed).
- `nested`: its only node is a subgraph whose node streams "from inside.".
- `nested_asking`: its only node is the `asking` graph, as a subgraph.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from chronos import graph, model
from chronos.model.openai import OpenAIProvider


async def _answer(state: dict[str, Any]) -> dict[str, Any]:
    url = state["messages"][-1]["content"]
    request = model.ChatRequest(messages=[model.Message(role="user", content="hi")])
    async with OpenAIProvider("gpt-x", base_url=url, api_key="test") as provider:
        response = await graph.stream_chat(provider, request)
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in response.tool_calls]
    return {"messages": [message]}


async def _echo(state: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "assistant",
                          "content": f"echo: {state['messages'][-1]['content']}"}]}


async def _fail(state: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("the tool broke")


class _Ticks(model.BaseProvider):
    async def _stream(self, req: model.ChatRequest) -> AsyncGenerator[model.ChatResponse, None]:
        for i in range(1200):
            yield model.ChatResponse(content=f"tick {i} ", delta=True)
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        return None


async def _tick(state: dict[str, Any]) -> dict[str, Any]:
    try:
        request = model.ChatRequest(messages=[model.Message(role="user", content="go")])
        response = await graph.stream_chat(_Ticks(), request)
    except asyncio.CancelledError:
        # A few bytes, once, while the task unwinds: awaiting a thread here could be cut short.
        Path(state["messages"][-1]["content"]).write_text("cancelled")  # noqa: ASYNC240
        raise
    return {"messages": [{"role": "assistant", "content": response.content}]}


class _Words(model.BaseProvider):
    def __init__(self, words: list[str]) -> None:
        super().__init__()
        self.words = words

    async def _stream(self, req: model.ChatRequest) -> AsyncGenerator[model.ChatResponse, None]:
        for word in self.words:
            yield model.ChatResponse(content=word, delta=True)

    async def aclose(self) -> None:
        return None


def _saying(*words: str) -> Any:
    async def say(state: dict[str, Any]) -> dict[str, Any]:
        request = model.ChatRequest(messages=[model.Message(role="user", content="go")])
        response = await graph.stream_chat(_Words(list(words)), request)
        graph.emit("progress", {"said": response.content})
        return {"messages": [{"role": "assistant", "content": response.content}]}
    return say


def _review(state: dict[str, Any]) -> dict[str, Any]:
    answer = graph.interrupt({"question": "publish?"})
    return {"messages": [{"role": "assistant", "content": f"published: {answer}"}]}


def _single(name: str, node: Any) -> graph.StateGraph:
    g = graph.StateGraph(name, reducers={"messages": graph.append})
    g.add_node("answer", node)
    g.set_entry_point("answer")
    g.set_finish_point("answer")
    return g


replay = _single("replay", _answer)
plain = _single("plain", _echo)
failing = _single("failing", _fail)
slow = _single("slow", _tick)

asking = graph.StateGraph("asking", reducers={"messages": graph.append})
asking.add_node("draft", _saying("Draft ", "ready.")).add_node("review", _review)
asking.set_entry_point("draft").add_edge("draft", "review").set_finish_point("review")
nested = graph.StateGraph("nested", reducers={"messages": graph.append})
nested.add_subgraph("inner", _single("inner", _saying("from ", "inside.")).compile())
nested.set_entry_point("inner")
nested.set_finish_point("inner")
nested_asking = graph.StateGraph("nested_asking", reducers={"messages": graph.append})
nested_asking.add_subgraph("inner", asking.compile())
nested_asking.set_entry_point("inner")
nested_asking.set_finish_point("inner")

"""The graph the AG-UI and AI SDK dialect tests serve (`tests.server.dialects.graphs:chat`).

`chat` keeps a conversation in `messages` (OpenAI-style dicts, appended). Its `respond` node
streams a model's answer to the last user message, through `graph.stream_chat` so every
chunk is a `token` event: reasoning first, then text. What the user writes picks the path:
- "weather": the model calls the `get_weather` tool (arguments streamed in fragments), the
  `tool` node answers it with a tool message, and `respond` streams again with the result;
- "approve": the `review` node asks `graph.interrupt({"question": "approve?"})` and records
  the answer as a message;
- "slow": tokens come 50 ms apart (for the tests that reconnect mid-stream);
- "fail": `respond` raises after its first tokens.
Every node emits a custom `progress` event. The model is scripted (no I/O), so every run
streams the same chunks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from chronos import graph, model
from chronos.graph import emit

WORDS = ["The ", "answer ", "is ", "forty-", "two."]
REASONING = ["Let me ", "think."]
TOOL_ARGUMENTS = ['{"ci', 'ty": "Pa', 'ris"}']
SLOW_WORDS = [f"w{i} " for i in range(40)]


class ScriptedModel(model.BaseProvider):
    """Streams a fixed answer to the last message: reasoning, then text or a tool call."""

    async def _stream(self, req: model.ChatRequest) -> AsyncGenerator[model.ChatResponse, None]:
        last = req.messages[-1]
        prompt = last.text
        delay = 0.05 if "slow" in prompt else 0.0
        for piece in REASONING:
            yield model.ChatResponse(reasoning=piece, delta=True)
        if "weather" in prompt and last.role == "user":
            call_id = "call-" + uuid.uuid4().hex[:8]
            for i, piece in enumerate(TOOL_ARGUMENTS):
                first = i == 0
                yield model.ChatResponse(delta=True, tool_call_deltas=[model.ToolCallDelta(
                    index=0, id=call_id if first else None,
                    name="get_weather" if first else None, arguments=piece)])
            yield model.ChatResponse(delta=True, tool_calls=[model.ToolCall(
                call_id, "get_weather", "".join(TOOL_ARGUMENTS))])
            return
        words = SLOW_WORDS if delay else WORDS
        if last.role == "tool":
            words = ["It ", "is ", "sunny."]
        for i, word in enumerate(words):
            if "fail" in prompt and i == 2:
                raise RuntimeError("the model broke down")
            yield model.ChatResponse(content=word, delta=True)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        return None


def _history(state: dict[str, Any]) -> list[model.Message]:
    out = []
    for m in state.get("messages") or []:
        calls = [model.ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                 for c in m.get("tool_calls") or []]
        out.append(model.Message(role=m["role"], content=m.get("content") or "",
                                 tool_call_id=m.get("tool_call_id"), tool_calls=calls))
    return out


async def respond(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "respond"})
    message_id = "msg-" + uuid.uuid4().hex[:12]
    async with ScriptedModel() as provider:
        response = await graph.stream_chat(provider, model.ChatRequest(messages=_history(state)),
                                           message_id=message_id)
    message: dict[str, Any] = {"id": message_id, "role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in response.tool_calls]
    return {"messages": [message]}


async def tool(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "tool"})
    call = state["messages"][-1]["tool_calls"][0]
    return {"messages": [{"id": f"result-{call['id']}", "role": "tool",
                          "tool_call_id": call["id"], "content": "sunny, 21 C"}]}


def review(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "review"})
    answer = graph.interrupt({"question": "approve?"})
    return {"messages": [{"id": "answer-" + uuid.uuid4().hex[:8], "role": "user",
                          "content": f"review: {answer}"}], "approved": answer}


def _after_respond(state: dict[str, Any]) -> str:
    last = state["messages"][-1]
    if last.get("tool_calls"):
        return "tool"
    users = [m for m in state["messages"] if m["role"] == "user"]
    if users and "approve" in str(users[-1].get("content")):
        return "review"
    return graph.END


_builder = graph.StateGraph("chat", reducers={"messages": graph.append})
_builder.add_node("respond", respond).add_node("tool", tool).add_node("review", review)
_builder.set_entry_point("respond")
_builder.add_conditional_edges("respond", _after_respond)
_builder.add_edge("tool", "respond")
_builder.set_finish_point("review")
chat = _builder.compile()

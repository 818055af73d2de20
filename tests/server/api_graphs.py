"""Graphs the HTTP behaviour tests serve (`chronos serve tests.server.api_graphs:agent ...`)."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from chronos import graph, model
from chronos.graph import emit

WORDS = ["Once", " upon", " a", " time"]


async def _plan(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "plan"})
    return {"steps": ["plan"]}


async def _write(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "write"})
    for word in WORDS * int(state.get("repeat", 1)):
        emit("token", {"message_id": "msg-1", "content": word})
    await asyncio.sleep(float(state.get("delay", 0)))
    return {"steps": ["write"], "text": "".join(WORDS)}


def _review(state: dict[str, Any]) -> dict[str, Any]:
    emit("progress", {"node": "review"})
    if state.get("fail"):
        raise RuntimeError("review failed on purpose")
    return {"steps": ["review"]}


def _build(graph_id: str, *, approval: bool) -> graph.StateGraph:
    g = graph.StateGraph(graph_id, reducers={"steps": graph.append})
    g.add_node("plan", _plan).add_node("write", _write)
    if approval:
        g.add_interrupt_node("review", _review)
    else:
        g.add_node("review", _review)
    g.set_entry_point("plan").add_edge("plan", "write").add_edge("write", "review")
    return g.set_finish_point("review")


agent = _build("agent", approval=False)
"""plan -> write (four tokens, `repeat` times; then sleeps `delay` seconds) -> review (fails
if `fail`)."""

approval = _build("approval", approval=True)
"""The same, pausing before `review` until resumed."""


def _ask(state: dict[str, Any]) -> dict[str, Any]:
    answer = graph.interrupt({"question": f"publish {state.get('topic', '')}?"})
    return {"steps": ["ask"], "answer": answer}


asking = graph.StateGraph("asking", reducers={"steps": graph.append})
"""plan -> ask (calls `graph.interrupt()` and keeps the answer) -> review."""
asking.add_node("plan", _plan).add_node("ask", _ask).add_node("review", _review)
asking.set_entry_point("plan").add_edge("plan", "ask").add_edge("ask", "review")
asking.set_finish_point("review")


def _call_tool(state: dict[str, Any]) -> dict[str, Any]:
    # What `graph.stream_chat` emits for a model that thinks, then calls a tool.
    emit("token", graph.MessageDelta("msg-t", reasoning="look it up"))
    emit("token", graph.MessageDelta("msg-t", tool_call_deltas=(
        model.ToolCallDelta(0, "call-1", "search", '{"q": '),)))
    emit("token", graph.MessageDelta("msg-t", tool_call_deltas=(
        model.ToolCallDelta(0, arguments='"tea"}'),), tool_calls=(
        model.ToolCall("call-1", "search", '{"q": "tea"}'),)))
    emit("token", graph.MessageDelta("msg-t", usage=model.Usage(  # the vendor's closing usage
        input_tokens=40, output_tokens=12, total_tokens=52, cached_tokens=32, reasoning_tokens=3)))
    return {"steps": ["call_tool"]}


tools = graph.StateGraph("tools", reducers={"steps": graph.append})
"""One node streaming reasoning and a tool call, as a model calling a tool does."""
tools.add_node("call_tool", _call_tool).set_entry_point("call_tool")
tools.set_finish_point("call_tool")


routed = graph.StateGraph("routed", reducers={"steps": graph.append})
"""plan -> (a router: write, or review when `skip`) ; write -> review."""
routed.add_node("plan", _plan).add_node("write", _write).add_node("review", _review)
routed.set_entry_point("plan").add_edge("write", "review").set_finish_point("review")
routed.add_conditional_edges("plan", lambda state: "review" if state.get("skip") else "write",
                             {"write": "write", "review": "review"})


async def _which_loop(state: dict[str, Any]) -> dict[str, Any]:
    return {"loop": type(asyncio.get_running_loop()).__module__}


event_loop = graph.StateGraph("event_loop").add_node("which", _which_loop)
"""One node that tells which event loop runs it (its class's module)."""
event_loop.set_entry_point("which").set_finish_point("which")


def _collector(state: dict[str, Any]) -> dict[str, Any]:
    return {"pid": os.getpid(), "frozen": gc.get_freeze_count(),
            "thresholds": list(gc.get_threshold())}


collector = graph.StateGraph("collector").add_node("inspect", _collector)
"""One node that tells which process runs it, how many objects it froze out of the garbage
collector's reach, and the collector's thresholds."""
collector.set_entry_point("inspect").set_finish_point("inspect")

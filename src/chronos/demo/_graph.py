"""The demo's agent graph: classify, draft (the model streams), review (a human), finalize.

```
classify -> draft -> review (pauses for Approve / Reject) -> finalize
                ^________|  rejected once: a second draft
```

The state is plain JSON (strings, ints, a bool) so that any checkpoint store takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from chronos.graph import CompiledGraph, State, StateGraph, stream_chat
from chronos.model import ChatRequest, Message, Provider

__all__ = ["GRAPH_ID", "build_graph", "graph_layout"]

GRAPH_ID: Final = "chronos-demo"

_MAX_DRAFTS: Final = 2  # a first draft and, after a rejection, one more

_QUESTION_WORDS: Final = frozenset(
    {"who", "what", "when", "where", "why", "how", "which", "is", "are", "can", "does", "do"}
)
_CREATIVE_WORDS: Final = ("story", "poem", "joke", "song", "haiku", "limerick")

_SYSTEM: Final[Mapping[str, str]] = {
    "question": "You are a helpful assistant. Answer the question briefly and accurately.",
    "creative": "You are a creative writer. Write what is asked, vividly and briefly.",
    "task": "You are a helpful assistant. Do what is asked, briefly.",
}


def _classify(state: State) -> dict[str, Any]:
    # A keyword rule, not a model call: the demo's point is the draft streaming, and a rule
    # shows the graph moving at once.
    text = str(state.get("prompt", "")).strip().lower()
    words = text.split()
    if any(word in text for word in _CREATIVE_WORDS):
        category = "creative"
    elif text.endswith("?") or (words and words[0] in _QUESTION_WORDS):
        category = "question"
    else:
        category = "task"
    return {"category": category}


def _review(state: State) -> dict[str, Any]:
    # Runs after the resume, which put the human's answer in `approved`.
    return {"decision": "approved" if state.get("approved") is True else "rejected"}


def _after_review(state: State) -> str:
    if state.get("decision") == "approved" or state.get("drafts", 0) >= _MAX_DRAFTS:
        return "finalize"
    return "draft"


def _finalize(state: State) -> dict[str, Any]:
    approved = state.get("decision") == "approved"
    return {
        "status": "approved" if approved else "rejected",
        "answer": state.get("draft", "") if approved else "",
    }


def build_graph(
    provider: Provider,
    *,
    max_tokens: int | None = 200,
    temperature: float | None = None,
    seed: int | None = None,
) -> CompiledGraph:
    """The demo graph, its draft node streaming `provider`'s answer token by token.

    Its initial state is `{"prompt": "..."}`; resume the pause at "review" with
    `{"approved": True}` or `{"approved": False}` (a rejected first draft is written again
    once). The final state has `status` ("approved" or "rejected") and `answer`.

    Args:
        provider: the model the draft node asks.
        max_tokens: the longest draft, in tokens (None: the provider's limit).
        temperature: sampling temperature (None: the provider's default).
        seed: sampling seed, for reproducible drafts.
    """

    async def draft(state: State) -> dict[str, Any]:
        category = str(state.get("category", "task"))
        messages = [
            Message(role="system", content=_SYSTEM.get(category, _SYSTEM["task"])),
            Message(role="user", content=str(state["prompt"])),
        ]
        drafts = int(state.get("drafts", 0))
        if drafts:
            messages += [
                Message(role="assistant", content=str(state.get("draft", ""))),
                Message(role="user", content="The reviewer rejected that. Try again, "
                        "differently and more briefly."),
            ]
        request = ChatRequest(
            messages=messages, max_tokens=max_tokens, temperature=temperature, seed=seed
        )
        response = await stream_chat(provider, request)
        return {"draft": response.content, "drafts": drafts + 1}

    g = StateGraph(GRAPH_ID)
    g.add_node("classify", _classify, inline=True)
    g.add_node("draft", draft)
    g.add_interrupt_node("review", _review, inline=True)
    g.add_node("finalize", _finalize, inline=True)
    g.set_entry_point("classify").add_edge("classify", "draft").add_edge("draft", "review")
    g.add_conditional_edge("review", _after_review, ["finalize", "draft"])
    g.set_finish_point("finalize")
    return g.compile()


def graph_layout(compiled: CompiledGraph) -> dict[str, Any]:
    """What the page needs to draw `compiled`: `compiled.describe()`, its Mermaid text beside.

    The page draws the nodes and edges itself; `mermaid` is the same description as text.
    """
    return {**compiled.describe(), "mermaid": compiled.draw_mermaid()}

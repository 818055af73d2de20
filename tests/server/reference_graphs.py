"""The LangGraph twin of `tests/server/graphs.py`, served by the reference `langgraph dev`.

`reference/langgraph.json` points at `agent`. The graph is written as a LangGraph user would:
a custom event per node through `get_stream_writer()`, and the tokens of the middle node from
a chat model streaming inside it (a LangChain model that streams a fixed text, so LangGraph's
`messages` mode sees a real model call; with `model_url` in the input, a model streaming
from that OpenAI-compatible server instead). `interrupt()` in `review` pauses the run when the
input asks for it. Keep both files in step: the conformance test compares what the SDK sees.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

import openai
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from tests.server.draft import TOKEN_COUNT, draft_tokens


class _ScriptedChatModel(BaseChatModel):
    """Streams `draft_tokens(topic)` for the topic in the last message, `token_delay` seconds
    apart (the tests that cancel or interrupt a run need one that lasts)."""

    token_delay: float = 0.0
    streaming: bool = False

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(draft_tokens(str(messages[-1].content)))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for token in draft_tokens(str(messages[-1].content)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for token in draft_tokens(str(messages[-1].content)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager is not None:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
            await asyncio.sleep(self.token_delay)


class _OpenAIChatModel(BaseChatModel):
    """Streams a chat completion from an OpenAI-compatible server (the replay server of the
    tests) through the official `openai` client, as `langchain-openai` would."""

    base_url: str

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("this model only streams, from async code")

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key="test") as client:
            stream = await client.chat.completions.create(
                model="gpt-x", stream=True,
                messages=[{"role": "user", "content": str(messages[-1].content)}],
            )
            async for completion in stream:
                text = completion.choices[0].delta.content if completion.choices else None
                if text:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk


class State(TypedDict, total=False):
    topic: str
    steps: Annotated[list[str], operator.add]
    draft: str
    verdict: str
    ask_review: bool
    token_delay: float
    model_url: str


async def plan(state: State) -> dict[str, Any]:
    get_stream_writer()({"node": "plan", "topic": state["topic"]})
    return {"steps": ["plan"]}


async def write(state: State) -> dict[str, Any]:
    get_stream_writer()({"node": "write"})
    # `streaming=True` (set explicitly, as langchain-core requires) streams even when no
    # handler listens (a run without `messages` mode), so `token_delay` applies to every run,
    # as it does in the Chronos twin.
    model: BaseChatModel = _ScriptedChatModel(
        token_delay=state.get("token_delay", 0.0), streaming=True
    )
    if "model_url" in state:
        model = _OpenAIChatModel(base_url=state["model_url"], streaming=True)
    message = await model.ainvoke(state["topic"])
    return {"steps": ["write"], "draft": str(message.content)}


async def review(state: State) -> dict[str, Any]:
    get_stream_writer()({"node": "review"})
    verdict = "ok"
    if state.get("ask_review"):
        verdict = str(interrupt({"question": "approve?", "draft_tokens": TOKEN_COUNT}))
    return {"steps": ["review"], "verdict": verdict}


_builder = StateGraph(State)
_builder.add_node("plan", plan)
_builder.add_node("write", write)
_builder.add_node("review", review)
_builder.add_edge(START, "plan")
_builder.add_edge("plan", "write")
_builder.add_edge("write", "review")
_builder.add_edge("review", END)
agent = _builder.compile()

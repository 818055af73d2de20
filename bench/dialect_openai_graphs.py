"""The graphs `bench/dialect_openai.py` serves with `chronos serve` (each takes `messages`).

- `local`: streams the local model's answer from its own OpenAI-compatible server (llama.cpp
  through xllamacpp, at `CHRONOS_BENCH_MODEL_URL`), greedily, `CHRONOS_BENCH_MAX_TOKENS`
  tokens, with the same settings the benchmark's direct requests use.
- `in_process`: the same answer from the same model run by this process
  (`LlamaCppProvider`: the same GGUF, `N_CTX`, one slot, `THREADS`), no model server.
- `burst`: streams as many tokens as the last message says, back to back, without a model:
  what is measured is the cost of delivering them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncGenerator
from typing import Any

from chronos import graph, model
from chronos.model.llamacpp import LlamaCppProvider
from chronos.model.openai import OpenAIProvider

SEED = 42
PROMPT = "Tell me a story about a robot"
# The model's settings on both sides: its own server's and the in-process provider's.
N_CTX = 2048
THREADS = 1

# One provider for the server's life: its connection to the model server is reused, as an
# application's would be.
_local = OpenAIProvider("smollm2", base_url=os.environ.get("CHRONOS_BENCH_MODEL_URL", ""),
                        api_key="unused")


@functools.cache
def in_process_provider() -> LlamaCppProvider:
    """One model for the server's life, made (and loaded, at its first request) only by the
    server that serves `in_process`."""
    return LlamaCppProvider(n_ctx=N_CTX, n_threads=THREADS)


def chat_request(state: dict[str, Any]) -> model.ChatRequest:
    """What every side asks the model: the last message, greedily."""
    return model.ChatRequest(
        messages=[model.Message(role="user", content=state["messages"][-1]["content"])],
        max_tokens=int(os.environ.get("CHRONOS_BENCH_MAX_TOKENS", "8")),
        temperature=0.0, seed=SEED)


async def _answer(provider: model.Provider, state: dict[str, Any]) -> dict[str, Any]:
    response = await graph.stream_chat(provider, chat_request(state))
    return {"messages": [{"role": "assistant", "content": response.content}]}


async def _ask_local(state: dict[str, Any]) -> dict[str, Any]:
    return await _answer(_local, state)


async def _ask_in_process(state: dict[str, Any]) -> dict[str, Any]:
    return await _answer(in_process_provider(), state)


class _Burst(model.BaseProvider):
    def __init__(self, count: int) -> None:
        self._count = count

    async def _stream(self, req: model.ChatRequest) -> AsyncGenerator[model.ChatResponse, None]:
        for i in range(self._count):
            yield model.ChatResponse(content=f"t{i} ", delta=True)

    async def aclose(self) -> None:
        return None


async def _burst(state: dict[str, Any]) -> dict[str, Any]:
    request = model.ChatRequest(messages=[model.Message(role="user", content="go")])
    response = await graph.stream_chat(_Burst(int(state["messages"][-1]["content"])), request)
    return {"messages": [{"role": "assistant", "content": response.content}]}


def _single(name: str, node: Any) -> graph.StateGraph:
    g = graph.StateGraph(name, reducers={"messages": graph.append})
    g.add_node("answer", node)
    g.set_entry_point("answer")
    g.set_finish_point("answer")
    return g


local = _single("local", _ask_local)
in_process = _single("in_process", _ask_in_process)
burst = _single("burst", _burst)

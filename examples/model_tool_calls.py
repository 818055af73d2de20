"""The guide's "Streaming with Tool Calls" example: print the text, collect the tool calls.

    OPENAI_API_KEY=... .venv/bin/python examples/model_tool_calls.py
    .venv/bin/python examples/model_tool_calls.py --base-url http://localhost:11434/v1 \
        --model qwen2.5                                # any OpenAI-compatible server
    .venv/bin/python examples/model_tool_calls.py --provider anthropic \
        --model claude-3-5-haiku-latest

It needs a model that calls tools: the small local model chronos runs in-process does not.
Every chunk's `tool_calls` holds each call once, complete, so the guide's naive loop is right
as written; the fragments a live UI would show are in `chunk.tool_call_deltas`.
"""

import argparse
import asyncio
import os

from chronos import model

WEATHER = model.ToolDefinition(
    "get_weather",
    "The current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def get_weather(city):
    return {"city": city, "sky": "clear", "celsius": 21}  # a stand-in for a real service


async def main(provider):
    req = model.ChatRequest(
        messages=[model.Message(role="user", content="What is the weather in Oslo and Lima?")],
        tools=[WEATHER],
    )
    tool_calls = []
    async for chunk in provider.stream_chat(req):
        if chunk.tool_calls:
            tool_calls.extend(chunk.tool_calls)
        print(chunk.content, end="", flush=True)
    print()
    for call in tool_calls:
        args = call.parsed_arguments()
        print(f"tool call {call.id}: {call.name}({args}) -> {get_weather(**args)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="openai", help="openai, anthropic, gemini, ...")
    parser.add_argument("--model", default=os.environ.get("CHRONOS_MODEL", "gpt-4o-mini"))
    parser.add_argument("--base-url", default=os.environ.get("CHRONOS_BASE_URL"))
    args = parser.parse_args()
    provider = model.provider_from_name(args.provider, model=args.model, base_url=args.base_url)
    asyncio.run(main(provider))

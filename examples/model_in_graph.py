"""The guide's "Combining Model and Graph Streaming" example: a graph node that streams a model.

    .venv/bin/python examples/model_in_graph.py "Tell me a story about a robot"
    .venv/bin/python examples/model_in_graph.py --provider openai --model gpt-4o-mini "Hi"

`chat_node` is the guide's chatNode. `graph.stream_chat` does the loop and the guide's
"Optionally publish to broker for UI updates": every token becomes a `token` event of the run,
on `runner.stream()` and on the runner's broker, in order with the graph's own events. Here a
broker subscriber plays the UI and prints what a browser would receive over SSE. The local
llama.cpp model runs by default (the `local` extra, nothing to configure).
"""

import argparse
import asyncio

import orjson

from chronos import graph, model, stream

SESSION = "session-1"


def build(provider, max_tokens):
    async def chat_node(state):
        req = model.ChatRequest(
            messages=[model.Message(role="user", content=state["query"])],
            max_tokens=max_tokens, temperature=0.0, seed=42,
        )
        # Streams every token into the run, and so to the broker for UI updates.
        response = await graph.stream_chat(provider, req)
        return {"response": response.content}

    g = graph.StateGraph("chat").add_node("chat", chat_node)
    return g.set_entry_point("chat").set_finish_point("chat").compile()


async def ui(subscription):
    # What a browser's EventSource gets: the JSON of each event, its type inside.
    in_text = False
    async for event in subscription:
        message = orjson.loads(event.json())
        data = message["data"]
        if message["type"] == "token":
            print(data["data"]["content"], end="", flush=True)
            in_text = True
            continue
        if in_text:
            print()  # end the streamed text's line
            in_text = False
        print(f"[{message['type']}] node={data['node_id']}", flush=True)
        if message["type"] in ("completed", "error", "interrupt", "cancelled"):
            return


async def main(provider, query, max_tokens):
    broker = stream.Broker()
    runner = graph.Runner(build(provider, max_tokens), broker=broker)
    async with broker.subscribe("ui", topics=[SESSION]) as subscription:  # before the run
        _, result = await asyncio.gather(
            ui(subscription), runner.run(SESSION, {"query": query})
        )
    print(f"response={result.state['response']!r}")
    await broker.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="*", default=["Tell me a story about a robot"])
    parser.add_argument("--provider", default="llamacpp", help="llamacpp, openai, anthropic, ...")
    parser.add_argument("--model", help="model name, or a GGUF path for llamacpp")
    parser.add_argument("--base-url", help="an OpenAI-compatible server's URL")
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args()
    provider = model.provider_from_name(args.provider, model=args.model, base_url=args.base_url)
    asyncio.run(main(provider, " ".join(args.query), args.max_tokens))

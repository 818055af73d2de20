"""Ask a human inside a node, then fan out one branch per item, with LangGraph's vocabulary.

    .venv/bin/python examples/graph_ask_and_fan_out.py --db runs.db                # asks
    .venv/bin/python examples/graph_ask_and_fan_out.py --db runs.db --answer tea   # continues

"plan" calls `graph.interrupt()` and the run pauses with the question; the second command
answers it from another process, "plan" returns a `Command` that sends one "write" branch
per topic (`graph.Send`), and "collect" sees every branch's output, in the order sent.
"""

import argparse
import asyncio

from chronos import graph, store


def plan(state):
    extra = graph.interrupt({"question": "One more topic?", "topics": state["topics"]})
    topics = [*state["topics"], extra]
    return graph.Command(update={"topics": topics},
                         goto=[graph.Send("write", {"topic": t}) for t in topics])


async def write(arg):
    return {"posts": [f"Robots and {arg['topic']}"]}


g = graph.StateGraph("posts", reducers={"posts": graph.append})
g.add_node("plan", plan, destinations=["write"], retry=graph.RetryPolicy(max_attempts=2))
g.add_node("write", write, timeout=30).add_node("collect", lambda s: {"count": len(s["posts"])})
g.set_entry_point("plan").add_edge("write", "collect").set_finish_point("collect")
compiled = g.compile()


async def main(db_path, answer):
    async with store.from_url(f"sqlite:///{db_path}") as checkpoints:
        runner = graph.Runner(compiled, checkpoints)
        if answer is None:
            result = await runner.run("posts-1", {"topics": ["rain"], "posts": []})
            print(f"status={result.status} asks={result.interrupts[0].value}")
        else:
            result = await runner.resume("posts-1", resume=answer)
            print(f"status={result.status} posts={result.state['posts']}")
    print(compiled.draw_mermaid().splitlines()[-4])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--answer")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.answer))

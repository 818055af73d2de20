"""Pause a run for a human, then resume it, in another process if you like.

    .venv/bin/python examples/graph_interrupt_resume.py --db runs.db            # pauses
    .venv/bin/python examples/graph_interrupt_resume.py --db runs.db --approve  # resumes

The first command drafts a post and pauses before "publish", an interrupt node; the second
resumes the session from the SQLite checkpoint with the human's answer, which runs "publish".
"""

import argparse
import asyncio

from chronos import graph, store


async def draft(state):
    return {"post": f"Robots and {state['topic']}", "log": ["draft"]}


async def publish(state):
    return {"published": bool(state.get("approved")), "log": ["publish"]}


g = graph.StateGraph("post", reducers={"log": graph.append})
g.add_node("draft", draft).add_interrupt_node("publish", publish)
g.set_entry_point("draft").add_edge("draft", "publish").set_finish_point("publish")
compiled = g.compile()


async def main(db_path, approve):
    async with store.from_url(f"sqlite:///{db_path}") as checkpoints:
        runner = graph.Runner(compiled, checkpoints)
        if approve:
            result = await runner.resume("post-1", {"approved": True})
        else:
            result = await runner.run("post-1", {"topic": "tea", "log": []})
        print(f"status={result.status} node={result.node_id} state={dict(result.state)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--approve", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.db, args.approve))

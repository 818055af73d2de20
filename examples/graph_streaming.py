"""The guide's "Graph Execution Streaming" example: print every event of a run as it happens.

    .venv/bin/python examples/graph_streaming.py [--db runs.db]

A three-node graph (extract, then a chat node streaming tokens, then a summary) runs with
SQLite checkpoints; a consumer subscribed before the run prints `[type] node=...` for each
event, as the guide's Go loop does, and the run's final state is printed at the end.
"""

import argparse
import asyncio
import os
import tempfile

from chronos import graph, store
from chronos.graph import emit


async def extract(state):
    emit("progress", {"step": "extract"})
    return {"topic": state["query"].strip().lower()}


async def chat(state):
    # A stand-in for a model: stream the answer token by token into the run's stream.
    response = []
    for word in f"A robot once asked about {state['topic']}.".split():
        emit("token", word + " ")
        response.append(word)
        await asyncio.sleep(0)
    return {"response": " ".join(response)}


def summarise(state):  # sync nodes work too; they run in a worker thread
    state["summary"] = state["response"][:24] + "..."
    return state


g = graph.StateGraph("story")
g.add_node("extract", extract).add_node("chat", chat).add_node("summarise", summarise)
g.set_entry_point("extract").add_edge("extract", "chat").add_edge("chat", "summarise")
g.set_finish_point("summarise")
compiled = g.compile()


async def main(db_path, session_id, initial_state):
    async with store.SQLiteStore(db_path) as checkpoints:
        runner = graph.Runner(compiled, checkpoints)

        # Start consuming events before Run
        events = runner.stream()

        async def consume():
            async for evt in events:
                print(f"[{evt.type}] node={evt.node_id}")

        result = (await asyncio.gather(consume(), runner.run(session_id, initial_state)))[1]
        print(f"status={result.status} state={dict(result.state)}")
        print(f"checkpoints={len(await runner.list_checkpoints(session_id))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(), "runs.db"))
    args = parser.parse_args()
    asyncio.run(main(args.db, "session-1", {"query": "Hi there"}))

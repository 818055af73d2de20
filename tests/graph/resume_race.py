"""A resume racing the end of a run, ROUNDS rounds: how often a node runs twice (RELIABILITY.md).

    python -m tests.graph.resume_race sqlite|memory ROUNDS

The loop of `test_run_once.test_a_resume_racing_the_end_of_a_run_never_reruns_a_node`, which
stops at the first node run twice; this one counts them, to measure the code before a fix.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter

from chronos import graph
from chronos.store import CheckpointStore, MemoryStore, SQLiteStore
from tests.graph.test_run_once import chain


async def main(kind: str, rounds: int) -> None:
    calls: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    twice = 0
    with tempfile.TemporaryDirectory() as folder:
        store: CheckpointStore = MemoryStore() if kind == "memory" else SQLiteStore(
            f"{folder}/runs.db")
        runner = graph.Runner(chain(calls), store)
        for i in range(rounds):
            before = calls.copy()
            run = asyncio.ensure_future(runner.run(f"s{i}", {"log": []}))
            for _ in range(i % 12):
                await asyncio.sleep(0)
            _, resumed = await asyncio.gather(run, runner.resume(f"s{i}"),
                                              return_exceptions=True)
            outcomes[type(resumed).__name__] += 1
            twice += any(calls[n] - before[n] > 1 for n in "abc")
        await store.aclose()
    print(f"{kind}: {rounds} rounds, {twice} ran a node twice; resumes: {dict(outcomes)}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

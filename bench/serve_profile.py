"""Where a `chronos serve` process spends its CPU per run, by package (cProfile).

    .venv/bin/python bench/serve_profile.py                    # 1 user, then 20, 10 s each
    .venv/bin/python bench/serve_profile.py --users 1 50 --duration 20
    .venv/bin/python bench/serve_profile.py --stream --users 50   # runs.stream, per token

The server (the benchmark graph `tests/server/graphs.py:agent`: three nodes, a custom event
each, 200 streamed tokens; SQLite store, in-process broker, uvloop, as `chronos serve`
defaults) runs in a child process under cProfile; this process drives it through the official
`langgraph-sdk`, each user creating a thread and calling `runs.wait` in a loop, as
`bench/serve_vs_langgraph.py` does, or with `--stream` `runs.stream` in modes custom +
messages-tuple (the first-event benchmark's request), reading every event. It prints the
runs done and the server's own time by package (`chronos.graph`, `chronos.stream`,
`chronos.server`, ...), idle time (`epoll`) apart.
cProfile slows Python calls down several times, so the split is what to read, not the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph_sdk import get_client
from tests.server.conformance_servers import REPO_ROOT, script_server

_SERVER = """
import asyncio, cProfile, sys
import uvloop  # the loop `chronos serve` runs on
from chronos import server, store, stream
from tests.server.graphs import agent
app = server.create_app({"agent": agent}, store=store.SQLiteStore(sys.argv[2] + "/p.db"),
                        broker=stream.Broker())
sock = server.bind("127.0.0.1", int(sys.argv[1]))
profile = cProfile.Profile()
profile.enable()
try:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve(app, sock))
except KeyboardInterrupt:
    pass
finally:
    profile.disable()
    profile.dump_stats(sys.argv[2] + "/server.prof")
"""


async def _user(url: str, deadline: float, stream: bool) -> int:
    client = get_client(url=url)
    done = 0
    while time.monotonic() < deadline:
        thread = await client.threads.create()
        if stream:
            async for _ in client.runs.stream(thread["thread_id"], "agent",
                                              input={"topic": "w"},
                                              stream_mode=["custom", "messages-tuple"]):
                pass
        else:
            await client.runs.wait(thread["thread_id"], "agent", input={"topic": "w"})
        done += 1
    await client.http.client.aclose()
    return done


def _group(path: str, name: str) -> str:
    if "chronos/" in path and "/tests/" not in path:
        return "chronos." + path.split("chronos/")[1].split("/")[0].removesuffix(".py")
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0]
    if "epoll" in name:
        return "(idle: epoll)"
    if path == "~":
        return "builtins (orjson, sockets, sqlite3, ...)"
    if "/tests/" in path:
        return "tests (the scripted model)"
    return "asyncio and the rest of the stdlib"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--stream", action="store_true",
                        help="runs.stream (custom + messages-tuple) instead of runs.wait")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chronos-profile-") as workdir:
        runs = 0
        with script_server(Path(sys.executable), _SERVER, workdir, REPO_ROOT) as url:
            for users in args.users:
                start = time.monotonic()
                counts = asyncio.run(_gather(url, users, start + args.duration, args.stream))
                runs += sum(counts)
                print(f"{users} users: {sum(counts)} runs in {time.monotonic() - start:.1f} s")
        stats = pstats.Stats(f"{workdir}/server.prof")
        if os.environ.get("CHRONOS_PROFILE_TOP"):
            stats.sort_stats("tottime").print_stats(int(os.environ["CHRONOS_PROFILE_TOP"]))
    by_group: collections.Counter[str] = collections.Counter()
    for (path, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_group[_group(path, name)] += own
    busy = sum(v for k, v in by_group.items() if not k.startswith("(idle"))
    print(f"server CPU under cProfile: {busy:.2f} s for {runs} runs "
          f"({1000 * busy / runs:.1f} ms per run)")
    for group, seconds in by_group.most_common():
        share = "" if group.startswith("(idle") else f"{100 * seconds / busy:5.1f}% of busy"
        print(f"  {seconds:7.2f} s  {share:>14}  {group}")


async def _gather(url: str, users: int, deadline: float, stream: bool) -> list[int]:
    return list(await asyncio.gather(*(_user(url, deadline, stream) for _ in range(users))))


if __name__ == "__main__":
    main()

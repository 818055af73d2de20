"""Which threads wait for a CPU before the first token, beside llama.cpp's own server.

    .venv/bin/python bench/ttft_threads.py --rounds 40
    .venv/bin/python bench/ttft_threads.py --rounds 5 --trace    # root: one timeline per side

The `openai` SDK streams the same greedy answer from llama.cpp's own OpenAI-compatible server
(xllamacpp, a process of its own) and from `chronos serve` running the same model itself (the
`in_process` graph of `bench/dialect_openai_graphs.py`), in alternating order, each once
every process has gone idle (with `bench/dialect_openai.py ttft`'s helpers). Around each request,
up to the SDK yielding the first text, every thread of the serving process and of this one
(the client) is read from `/proc/<pid>/task/<tid>/schedstat`, the scheduler's own account:
CPU time, and time spent runnable but waiting for a CPU (run-queue wait). Printed: the
medians per thread over the rounds it ran in (llama.cpp's server hands each request to one
of a pool of threads), threads that ran in at least a fifth of the rounds; the serving
process's main thread (Chronos's event loop) first, then by CPU time. No privilege needed.

`--trace` (root, tracefs at /sys/kernel/tracing): the kernel's `sched_switch`,
`sched_wakeup` and `sched_migrate_task` events of the last round on each side, from the
SDK's `create()` to its first text, as milliseconds after `create()`: which thread ran on
which CPU, which woke which, and on which CPU it was queued.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
from bench.dialect_openai import _first_token, _load, _settle, model_server_process
from bench.dialect_openai_graphs import SEED
from tests.server.api_server import serving

_TRACING = Path("/sys/kernel/tracing")
_EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "sched/sched_migrate_task")
Sample = dict[tuple[int, int], tuple[int, int]]  # (pid, tid) -> (CPU ns, run-queue wait ns)


def _threads(pid: int) -> Sample:
    sample = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            cpu, wait, _ = (Path(task, "schedstat").read_text()).split()
            sample[(pid, int(task.name))] = (int(cpu), int(wait))
    return sample


@contextlib.contextmanager
def _tracing() -> Iterator[Callable[[str], None]]:
    """Sched events recorded while the block runs (tracing left on or off as it was after);
    yields a marker writer."""
    def write(name: str, text: str) -> None:
        Path(_TRACING, name).write_text(text)

    was_on = Path(_TRACING, "tracing_on").read_text().strip()
    write("trace", "")
    for event in _EVENTS:
        write(f"events/{event}/enable", "1")
    write("tracing_on", "1")
    try:
        yield lambda text: write("trace_marker", text)
    finally:
        write("tracing_on", was_on)
        for event in _EVENTS:
            write(f"events/{event}/enable", "0")


def _timeline(tids: set[int]) -> list[str]:
    """The trace from the `create` marker to the `first` one, times in ms after `create`:
    the events that name one of `tids`."""
    lines = []
    start = None
    for line in (_TRACING / "trace").read_text().splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        head, _, what = line.partition(": ")
        stamp = float(head.split()[-1])
        if "tracing_mark_write: create" in line:
            start = stamp
        if start is None:
            continue
        task, cpu = head.split()[:2]
        named = {int(n) for n in re.findall(r"pid=(\d+)", what)}
        named.add(int(task.rsplit("-", 1)[-1]))
        if not named & tids and "tracing_mark_write" not in what:
            continue
        lines.append(f"  {(stamp - start) * 1e3:+8.3f} {cpu} {task:24s} {what.split(': ', 1)[-1]}")
        if "tracing_mark_write: first" in line:
            break
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--trace", action="store_true",
                        help="also the scheduler's events of each side's last round (root)")
    args = parser.parse_args()
    me = os.getpid()
    print(f"load before: {_load()}")
    with model_server_process() as (address, model_pid):
        os.environ["CHRONOS_BENCH_MODEL_URL"] = f"{address}/v1"
        os.environ["CHRONOS_BENCH_MAX_TOKENS"] = str(args.max_tokens)
        direct = openai.OpenAI(base_url=f"{address}/v1", api_key="unused", max_retries=0)
        options = {"max_tokens": args.max_tokens, "temperature": 0.0, "seed": SEED}
        with serving("bench.dialect_openai_graphs:in_process") as served:
            chronos = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused",
                                    max_retries=0)
            server_pid = served.pid
            sides: dict[str, tuple[int, Callable[[Callable[[], object]], float]]] = {
                "llama.cpp server": (model_pid, lambda at: _first_token(
                    direct, "smollm2", at, **options)[0] * 1e3),
                "chronos serve, model in process": (server_pid, lambda at: _first_token(
                    chronos, "in_process", at)[0] * 1e3),
            }
            for _, side in sides.values():  # warm-up: connections, the prompt caches
                for _ in range(3):
                    side(lambda: None)
            idle = (me, model_pid, server_pid)
            ttfts: dict[str, list[float]] = collections.defaultdict(list)
            per_thread: dict[str, dict[tuple[int, int], list[tuple[int, int]]]] = {
                name: collections.defaultdict(list) for name in sides}
            for round_ in range(args.rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for name in order:
                    pid, side = sides[name]
                    _settle(idle)
                    before = {**_threads(pid), **_threads(me)}
                    after: Sample = {}

                    def read(after: Sample = after, pid: int = pid) -> None:
                        after.update({**_threads(pid), **_threads(me)})

                    ttfts[name].append(side(read))
                    for key, (cpu, wait) in after.items():
                        if key in before:
                            per_thread[name][key].append(
                                (cpu - before[key][0], wait - before[key][1]))
            timelines = {}
            if args.trace:
                for name, (pid, side) in sides.items():
                    _settle(idle)
                    with _tracing() as mark:
                        mark("create")
                        side(lambda: mark("first"))
                    tids = {int(t) for p in (pid, me) for t in os.listdir(f"/proc/{p}/task")}
                    timelines[name] = _timeline(tids)
    print(f"load after: {_load()}; {args.rounds} "
          f"rounds, {args.max_tokens} tokens; per thread, from create() to the first text")
    for name, (pid, _) in sides.items():
        print(f"{name} (pid {pid}): TTFT median {statistics.median(ttfts[name]):.2f} ms")
        rows = []
        for (owner, tid), values in per_thread[name].items():
            ran_in = [v for v in values if v[0] > 0]
            if len(ran_in) < args.rounds / 5:
                continue
            ran = len(ran_in)
            cpu_ms = statistics.median(v[0] for v in ran_in) / 1e6
            wait_ms = statistics.median(v[1] for v in ran_in) / 1e6
            role = ("the SDK client (this process)" if owner == me else
                    "main thread" if tid == pid else "thread")
            rows.append((tid != pid or owner == me, -cpu_ms, f"  {role:30s} tid {tid:6d}: CPU "
                         f"{cpu_ms:6.3f} ms, run-queue wait {wait_ms:6.3f} ms (ran in {ran} "
                         "rounds)"))
        for *_, row in sorted(rows):
            print(row)
    for name, lines in timelines.items():
        print(f"timeline, {name} (ms after create(), CPU, task, event):")
        print("\n".join(lines))


if __name__ == "__main__":
    main()

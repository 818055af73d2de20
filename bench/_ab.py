"""What the `*_ab.py` benchmarks share: a workload run by each checkout, rounds alternating.

Each checkout is a directory with its own `.venv` (its compiled build, if current). A round runs
the workload once per checkout, each in a fresh process, so that all see the same machine load.
With `instructions`, valgrind counts what the workload costs instead of timing it: the count of
a large run less that of a small one, which does not move with the load of a shared machine.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path


def run_workload(checkout: Path, workload: str, env: dict[str, str], valgrind: bool) -> float:
    """What the `workload` script prints, run by `checkout`'s venv with `env` added; or with
    `valgrind`, the instructions the whole process ran."""
    env = {**os.environ, **env}
    argv = [str(checkout / ".venv" / "bin" / "python"), "-c", workload]
    if valgrind:
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                "--cachegrind-out-file=/dev/null", *argv]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    if not valgrind:
        return float(done.stdout)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert refs is not None, done.stderr
    return float(refs.group(1).replace(",", ""))


def compare(
    checkouts: list[Path],
    timed: Callable[[Path], float],
    counted: Callable[[Path, int], float],
    *,
    rounds: int,
    instructions: bool,
    sizes: tuple[int, int],
) -> dict[Path, list[float]]:
    """Each checkout's figure per round: `timed(checkout)`, or with `instructions` the
    instructions per unit of work, `counted` at the large size less at the small one."""
    small, large = sizes
    found: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    for _ in range(1 if instructions else rounds):
        for checkout in checkouts:
            if instructions:
                extra = counted(checkout, large) - counted(checkout, small)
                found[checkout].append(extra / (large - small))
            else:
                found[checkout].append(timed(checkout))
    return found


def summary(values: list[float], fmt: str) -> str:
    """The median of `values` and each round's value, formatted with `fmt`."""
    rounds = ", ".join(format(value, fmt) for value in values)
    return f"median {statistics.median(values):{fmt}} (rounds: {rounds})"

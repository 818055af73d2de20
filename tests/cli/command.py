"""Run the `chronos` command as a real subprocess, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHRONOS = Path(sys.executable).with_name("chronos")
PROMPT = "Tell me a story about a robot"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without a setting that would pick another provider or store
    (CHRONOS_*, *_API_KEY, OLLAMA_HOST), plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CHRONOS_")
        and not name.endswith("_API_KEY")
        and name != "OLLAMA_HOST"
    }
    return {**env, **extra}


def chronos_in(folder: Path | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`chronos *args` run to the end in `folder` (here if None), with `environment(**env)`."""
    return subprocess.run(
        [str(CHRONOS), *args], capture_output=True, text=True, cwd=folder,
        env=environment(**env), timeout=120,
    )


def chronos(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`chronos *args` run to the end here, with `environment(**env)`."""
    return chronos_in(None, *args, **env)

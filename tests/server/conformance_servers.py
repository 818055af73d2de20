"""Start the two servers the conformance tests and the benchmark compare, as real processes.

`reference_server()` runs the reference LangGraph Agent Server (`langgraph dev` from PyPI
`langgraph-cli[inmem]`) on `reference_graphs.agent`; `chronos_server()` runs `chronos serve`
on `graphs.agent`. Both listen on a free port of 127.0.0.1, are ready when `GET /ok`
answers, and are stopped (SIGTERM, then SIGKILL) when the context ends. Each runs in its own
temporary directory: `langgraph dev` writes `.langgraph_api/` into its working directory,
`chronos serve` its SQLite store. `script_server()` runs a benchmark's own serving script
(a server under a profiler, or stamping its requests) the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

__all__ = ["REPO_ROOT", "ServedAPI", "ServerKind", "chronos_server", "reference_server",
           "script_server"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_REFERENCE_CONFIG = Path(__file__).resolve().parent / "reference" / "langgraph.json"
_STARTUP_SECONDS = 90.0

ServerKind = Literal["reference", "chronos"]


@dataclass(frozen=True)
class ServedAPI:
    """A running server: what it is, where it listens, and its process id."""

    kind: ServerKind
    url: str
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-4000:]
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {_STARTUP_SECONDS} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _serve(kind: ServerKind, argv: Sequence[str], env: Mapping[str, str]) -> Iterator[ServedAPI]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix=f"chronos-{kind}-") as workdir:
        log = Path(workdir) / "server.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*argv, "--host", "127.0.0.1", "--port", str(port)],
                cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(process, url, log)
            yield ServedAPI(kind, url, process.pid)
        finally:
            _stop(process)


def reference_server(
    *, jobs_per_worker: int | None = None, env: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[ServedAPI]:
    """`langgraph dev` on `reference_graphs.agent`: no browser, no reload, no analytics.

    Args:
        jobs_per_worker: its `--n-jobs-per-worker` (runs executed at once; 10 by default).
        env: extra environment, such as `BG_JOB_ISOLATED_LOOPS=true`.
    """
    argv = [sys.executable, "-m", "langgraph_cli", "dev", "--config", str(_REFERENCE_CONFIG),
            "--no-browser", "--no-reload"]
    if jobs_per_worker is not None:
        argv += ["--n-jobs-per-worker", str(jobs_per_worker)]
    return _serve("reference", argv, {"LANGGRAPH_CLI_NO_ANALYTICS": "1", **(env or {})})


def chronos_server(
    *, workers: int | None = None, env: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[ServedAPI]:
    """`chronos serve tests.server.graphs:agent`, its store and broker at their defaults
    (SQLite in its temporary directory, in-process broker) unless `env` names others."""
    argv = [str(Path(sys.executable).parent / "chronos"), "serve", "tests.server.graphs:agent"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return _serve("chronos", argv, dict(env or {}))


@contextlib.contextmanager
def script_server(python: Path, script: str, workdir: str, pythonpath: Path) -> Iterator[str]:
    """`python -c script PORT WORKDIR`, a script serving an app on a free port of 127.0.0.1 (its
    output in `workdir`/server.log): its URL once `GET /ok` answers. When the context ends it is
    interrupted (SIGINT), so that it can write what it gathered into `workdir`, and waited for."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(workdir) / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(python), "-c", script, str(port), workdir],
            env={**os.environ, "PYTHONPATH": str(pythonpath)}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(process, url, log)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)

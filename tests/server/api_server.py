"""A real `chronos serve` process on 127.0.0.1 for the HTTP behaviour tests (test_api_*)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

__all__ = ["Served", "serving", "serving_app"]

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    url: str
    log: Path
    pid: int

    def children(self) -> list[int]:
        """The server's child processes (its workers beyond the first)."""
        text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return [int(pid) for pid in text.split()]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serving(*targets: str, store: str = "memory://", options: tuple[str, ...] = ()
            ) -> Iterator[Served]:
    """`chronos serve TARGETS` until the block ends (SIGTERM; it must exit by itself, as
    uvicorn does: by re-raising the signal once shut down), unless the test killed it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="chronos-api-") as workdir:
        log = Path(workdir) / "server.log"
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "chronos"), "serve", *targets, "--store",
                 store, *options, "--host", "127.0.0.1", "--port", str(port)],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield Served(url, log, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                ended = process.wait(timeout=15)
                assert ended in (0, -signal.SIGTERM, -signal.SIGKILL), log.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


@contextlib.contextmanager
def serving_app(app: object) -> Iterator[str]:
    """An app object under uvicorn in a thread of this process, until the block ends: its URL.
    (For what the CLI does not set: a broker's window, a records backend's prefix...)"""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    runner = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not runner.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        runner.should_exit = True
        thread.join(10)
        sock.close()

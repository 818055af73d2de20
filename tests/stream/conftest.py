"""Real servers on loopback for the SSE tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.types import ASGIApp


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Uvicorn(uvicorn.Server):
    """uvicorn, with a hook run when shutdown begins (uvicorn tells streaming apps nothing)."""

    before_shutdown: Callable[[], Awaitable[None]] | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            await self.before_shutdown()
        await super().shutdown(sockets)


class Server:
    """A uvicorn server running in a thread of its own, with its own event loop."""

    def __init__(
        self,
        app: ASGIApp,
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
        **config: Any,
    ) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(4096)
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "off")
        config.setdefault("backlog", 4096)
        self.server = _Uvicorn(uvicorn.Config(app, **config))
        self.server.before_shutdown = before_shutdown
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn failed to start"
            time.sleep(0.01)

    def stop(self, timeout: float = 10) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.socket.close()
        assert not self.thread.is_alive(), f"uvicorn did not stop within {timeout}s"


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, before_shutdown: Callable[[], Awaitable[None]] | None = None, **config: Any
) -> AsyncIterator[Server]:
    """Run `app` under uvicorn on 127.0.0.1 until the block ends."""
    server = Server(app, before_shutdown, **config)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        # From a worker thread: this loop must keep running so its clients can disconnect.
        await anyio.to_thread.run_sync(server.stop)

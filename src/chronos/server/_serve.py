"""`serve`: run an app under uvicorn on a socket, ending its streams when shutdown begins."""

from __future__ import annotations

import errno
import gc
import socket
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import uvicorn
from starlette.types import Receive, Scope, Send

from chronos.errors import ConfigurationError

__all__ = ["Closable", "bind", "serve"]


class Closable(Protocol):
    """An ASGI app with an `aclose()` that ends its open streams."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def aclose(self) -> Awaitable[None]: ...


class _Server(uvicorn.Server):
    """uvicorn, telling the app when shutdown begins and the caller when it is listening."""

    def __init__(self, config: uvicorn.Config, app: Closable, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._app = app
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            _freeze_startup_objects()
            _collect_fully_less_often()
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses before it stops, and event streams never end by
        # themselves: closing the app ends them.
        await self._app.aclose()
        await super().shutdown(sockets)


def _freeze_startup_objects() -> None:
    """Move every object alive once the app has started (modules, graphs, the app) out of
    the collector's reach.

    A served process holds tens of thousands of such objects that never become garbage, and
    each full collection walks them all while every stream waits: 107-187 ms a time in a
    served process that had imported LangGraph (179,000 objects; BENCHMARKS.md, "gcstream
    branch"). Collected first, so that start-up garbage is freed rather than kept forever.
    """
    gc.collect()
    gc.freeze()


# Full collections at most every 100 middle-generation ones (Python: 10): BENCHMARKS.md, crowd.
_FULL_COLLECTION_AFTER: Final = 100


def _collect_fully_less_often() -> None:
    """Run a full collection a tenth as often as Python would.

    A full collection walks everything that survived two younger ones, every item of every
    container included: in a served process, chiefly the broker's replay logs (a deque of
    ~200 token frames per thread for `replay_seconds`), which Python's trigger counts as one
    object each. Under 50 streaming users it ran every 50-100 runs, took 2-14 ms of the event
    loop's CPU, more as the logs accumulated, while every stream and new request waited, and
    freed nothing (the server's state is acyclic or long-lived); the younger collections,
    which do find the short-lived garbage, keep their thresholds.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _FULL_COLLECTION_AFTER)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`.

    Raises:
        ConfigurationError: the port is in use, or the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is in use; stop what uses it or pass --port"
            ) from exc
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


async def serve(
    app: Closable,
    sock: socket.socket,
    *,
    on_ready: Callable[[], None] = lambda: None,
    log_level: str = "warning",
) -> None:
    """Serve `app` on the listening socket `sock` (see `bind`) until Ctrl-C or SIGTERM.

    `on_ready` is called once the server accepts requests. The process is the server's from
    then on: what exists once the app has started is frozen out of the garbage collector's
    reach (`gc.freeze()`), so that its collections during load scan only what requests made.
    """
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    await _Server(config, app, on_ready).serve(sockets=[sock])

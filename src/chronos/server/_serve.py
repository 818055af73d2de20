"""`serve`: run an app under uvicorn on a socket, ending its streams when shutdown begins."""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

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
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses before it stops, and event streams never end by
        # themselves: closing the app ends them.
        await self._app.aclose()
        await super().shutdown(sockets)


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

    `on_ready` is called once the server accepts requests.
    """
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    await _Server(config, app, on_ready).serve(sockets=[sock])

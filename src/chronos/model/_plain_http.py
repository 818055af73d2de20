"""The HTTP client of a provider whose server is reached over plain `http://`: a local model
server (llama.cpp, vLLM, Ollama's `/v1`), where what the request costs on this side shows in
the time to the first token.

It is httpx's usual client, over asyncio's own transports instead of httpcore's default anyio
streams, which connect through a task group and yield to the event loop after every write:
the request's head and its body then leave in two packets, each waking the server, and each
write waits for whatever else the loop has queued (the rest of a served request). Here a
write hands its bytes to the transport and returns (uvloop sends one loop turn's writes in one
system call; asyncio sends each at once), waiting only while the transport's buffer is full.
`https://` servers keep httpx's default: TLS is not done here.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any, Final, cast

import httpcore
import httpx

__all__ = ["plain_http_client"]

_READ_AHEAD: Final = 262_144  # bytes received unread before the socket stops being read


def plain_http_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` (httpx's default limits) for `http://` servers."""
    transport = httpx.AsyncHTTPTransport()
    # httpx has no argument for httpcore's (public) network backend: its pool is replaced.
    transport._pool = httpcore.AsyncConnectionPool(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
        network_backend=_Backend())
    return httpx.AsyncClient(timeout=timeout, transport=transport)


class _Protocol(asyncio.Protocol):
    """A connection's received bytes, end and write pressure, for `_Stream`."""

    def __init__(self) -> None:
        self.transport: asyncio.ReadTransport | None = None
        self.received = bytearray()
        self.ended = False  # the server closed its side, or the connection was lost
        self.error: BaseException | None = None
        self.paused = False  # writing is paused until the transport's buffer drains
        self.reading_paused = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.ReadTransport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > _READ_AHEAD and not self.reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.paused = False
        self._wake()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    async def wait(self) -> None:
        """Until something is received, the connection ends or writing may go on."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.received and not protocol.ended:
            try:
                async with asyncio.timeout(timeout):
                    while not protocol.received and not protocol.ended:
                        await protocol.wait()
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out reading") from None
        received = protocol.received
        if received:
            data = bytes(received[:max_bytes])
            del received[:max_bytes]
            if protocol.reading_paused and len(received) <= _READ_AHEAD:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error)) from protocol.error
        return b""  # the server closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.ended:
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if not protocol.paused:
            return
        try:
            async with asyncio.timeout(timeout):
                while protocol.paused and not protocol.ended:
                    await protocol.wait()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing") from None
        if protocol.ended:
            raise httpcore.WriteError("the connection is closed")

    async def aclose(self) -> None:
        self._transport.close()
        # The socket closes in a callback of the loop's: let it run, as anyio's streams do, so
        # that the connection is closed when this returns.
        await asyncio.sleep(0)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("this client reaches http:// servers only")

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # while idle in the pool: the server closed it, or talks
            return self._protocol.ended or bool(self._protocol.received)
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(loop.create_connection(
                _Protocol, host, port,
                local_addr=(local_address, 0) if local_address is not None else None), timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

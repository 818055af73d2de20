"""A cheap SSE load generator: raw asyncio sockets, one regex per read, no HTTP library.

`sse_fanout.py` runs it in one or two processes, each driving many connections and taking
commands through a pipe. A read is only timestamped, counted (`bytes.count`, in C) and kept:
parsing it in `data_received` would delay the reads of every other socket that is ready in
the same loop iteration (at 1,000 clients that was tens of ms of the measured latency), so
the events are decoded once the phase is over. Then each kept read is scanned for
`"b":<burst>,"i":<n>,"t":<publish time>` (the server writes these keys in this order) and
the publish-to-receive latency of each event is `receipt - t`, both read from
CLOCK_MONOTONIC, which every process on the machine shares.
"""

from __future__ import annotations

import array
import asyncio
import re
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

TICK = re.compile(rb'"b":(\d+),"i":\d+,"t":(\d+)')
TIME_KEY = b'"t":'  # once per tick event, and in nothing else the servers send
GAP = b'"type":"gap"'


class Totals:
    """What every connection of this process has received since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.gaps = 0
        self.reads: list[tuple[int, bytes]] = []  # (receipt time, complete messages read)

    def decode(self) -> tuple[array.array[int], dict[int, int]]:
        """Latency of every event, and when each burst's last event arrived."""
        latencies = array.array("q")
        last_receive: dict[int, int] = {}
        for now, messages in self.reads:
            bursts = set()
            for burst, sent in TICK.findall(messages):
                latencies.append(now - int(sent))
                bursts.add(burst)
            for burst in bursts:
                last_receive[int(burst)] = max(now, last_receive.get(int(burst), 0))
        return latencies, last_receive


class SSEClient(asyncio.Protocol):
    def __init__(self, request: bytes, totals: Totals, ready: asyncio.Future[bool]) -> None:
        self.request = request
        self.totals = totals
        self.ready = ready
        self.head = b""
        self.tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if not self.ready.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.ready.set_result(self.head.startswith(b"HTTP/1.1 200"))
            data, self.head = self.head[end + 4 :], b""
        buffer = self.tail + data if self.tail else data
        # Messages end with a blank line: "\n\n" (chronos) or "\r\n\r\n" (sse-starlette).
        cut = max(buffer.rfind(b"\n\n") + 2, buffer.rfind(b"\n\r\n") + 3)
        if cut < 3:
            self.tail = buffer
            return
        self.tail = buffer[cut:]
        totals = self.totals
        ticks = buffer.count(TIME_KEY, 0, cut)
        if ticks:
            totals.count += ticks
            totals.reads.append((now, buffer if cut == len(buffer) else buffer[:cut]))
        if GAP in buffer:
            totals.gaps += buffer.count(GAP, 0, cut)


async def _connect_all(
    host: str, port: int, count: int, totals: Totals
) -> list[asyncio.Transport]:
    loop = asyncio.get_running_loop()
    request = f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    transports: list[asyncio.Transport] = []

    async def one() -> None:
        ready: asyncio.Future[bool] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: SSEClient(request.encode(), totals, ready), host, port
        )
        if await asyncio.wait_for(ready, 60):
            transports.append(transport)
        else:
            transport.close()

    for start in range(0, count, 250):  # in batches: the accept queue is finite
        await asyncio.gather(*(one() for _ in range(min(250, count - start))))
    return transports


async def _serve(connection: Connection, host: str, port: int, clients: int) -> None:
    totals = Totals()
    transports = await _connect_all(host, port, clients, totals)
    connection.send(len(transports))
    cpu_start = _cpu()
    while True:
        command, argument = await asyncio.to_thread(connection.recv)
        if command == "reset":
            totals.reset()
            cpu_start = _cpu()
            connection.send(None)
        elif command == "collect":  # wait for `argument` events, or until they stop coming
            expected = argument * len(transports)
            deadline = time.monotonic() + 120
            idle_since, seen = time.monotonic(), -1
            while totals.count < expected and time.monotonic() < deadline:
                if totals.count != seen:
                    idle_since, seen = time.monotonic(), totals.count
                elif time.monotonic() - idle_since > 10:
                    break
                await asyncio.sleep(0.005)
            cpu = _cpu() - cpu_start  # receiving only: decoding is the bench's own work
            latencies, last_receive = totals.decode()
            totals.reads.clear()
            connection.send(
                {
                    "count": totals.count,
                    "expected": expected,
                    "gaps": totals.gaps,
                    "latencies": latencies.tobytes(),
                    "last_receive": last_receive,
                    "cpu": cpu,
                }
            )
        elif command == "close":
            for transport in transports:
                transport.close()
            await asyncio.sleep(0.1)
            connection.send(None)
            return


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(connection: Connection, host: str, port: int, clients: int) -> None:
    """Process entry point: connect `clients` streams, then obey `connection`."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(connection, host, port, clients))

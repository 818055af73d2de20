"""The soak: thousands of SSE clients on loopback against `server.py`, checked event by event.

`run_soak(config)` starts the server in a process of its own, connects `config.clients`
streams from this process (raw asyncio sockets, a few microseconds per event), and for
`config.seconds` keeps disconnecting a share of them every second (half with a FIN, half with a
RST) and reconnecting them with `Last-Event-ID`, while the server publishes to every topic.
Some of the disconnected clients leave for good and a fresh client (no `Last-Event-ID`) takes
their place. Every event every client receives is checked:

- `seq` (counted per topic by the server) is the previous one + 1, across reconnects too:
  anything else is a lost or duplicated event. A `gap` marker is the broker saying it dropped
  events: an overflow gap must announce exactly how many, and a client with any gap did not
  keep up;
- the event is of the client's topic, its `id:` line and JSON id agree, ids increase.

Then publishing stops and the clients get time to reach their topic's final `seq`; the
server's subscriptions, running handlers and file descriptors are read with every client
connected and again once every client has gone. Server RSS is sampled throughout;
`SoakResult.rss_growth_kib` is the growth between the two halves of the run after warm-up.
The `SoakResult` says what happened; `tests/soak/test_soak.py` decides whether that held.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.soak.server import rss_kib

ROOT = Path(__file__).resolve().parents[2]


def _default_stack() -> str:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _gc_threshold(value: str | None) -> tuple[int, int, int] | None:
    if not value:
        return None
    first, second, third = (int(part) for part in value.split(","))
    return first, second, third


@dataclasses.dataclass(frozen=True)
class SoakConfig:
    clients: int
    seconds: float
    """How long clients churn while events are published, once every client is connected."""
    topic_rate: float = 1.0
    """Events a second published to each topic."""
    clients_per_topic: int = 100
    churn: float = 0.01
    """Share of the clients disconnected every second."""
    replace: float = 0.1
    """Share of the disconnected clients that leave for good, replaced by a fresh client."""
    reconnect_delay: float = 2.0
    """A disconnected client reconnects after a random delay up to this many seconds."""
    replay_seconds: float = 30.0
    payload: int = 64
    stack: str = dataclasses.field(default_factory=_default_stack)
    gc_threshold: tuple[int, int, int] | None = None
    """The server's `gc.set_threshold(...)`; None: CPython's default."""
    seed: int = 7

    @classmethod
    def from_env(cls) -> SoakConfig:
        """The full-size soak, resized by `SOAK_CLIENTS`, `SOAK_SECONDS`, `SOAK_TOPIC_RATE`, ..."""
        env = os.environ
        return cls(
            clients=int(env.get("SOAK_CLIENTS", "10000")),
            seconds=float(env.get("SOAK_SECONDS", "600")),
            topic_rate=float(env.get("SOAK_TOPIC_RATE", "0.2")),
            clients_per_topic=int(env.get("SOAK_CLIENTS_PER_TOPIC", "100")),
            churn=float(env.get("SOAK_CHURN", "0.005")),
            stack=env.get("SOAK_STACK", _default_stack()),
            gc_threshold=_gc_threshold(env.get("SOAK_GC_THRESHOLD")),
        )

    @property
    def topics(self) -> int:
        return max(1, self.clients // self.clients_per_topic)


@dataclasses.dataclass
class SoakResult:
    config: SoakConfig
    connect_seconds: float = 0.0
    connections: int = 0
    """Connections that got a 200 and streamed, reconnections included."""
    resumed: int = 0
    """Of those, reconnections with `Last-Event-ID`."""
    replaced: int = 0
    aborted: int = 0
    closed: int = 0
    failed_connects: int = 0
    server_closes: int = 0
    """Streams the server ended while the client was reading."""
    clients: int = 0
    kept_up: int = 0
    events: int = 0
    published: int = 0
    lost: int = 0
    duplicated: int = 0
    miscounted_gaps: int = 0
    foreign: int = 0
    id_errors: int = 0
    gaps: dict[str, int] = dataclasses.field(default_factory=dict)
    incomplete: int = 0
    """Connected clients short of their topic's final event once publishing stopped."""
    open_at_end: int = 0
    server_at_end: dict[str, Any] = dataclasses.field(default_factory=dict)
    server_after_close: dict[str, Any] = dataclasses.field(default_factory=dict)
    fds_before_clients: int = 0
    freed_seconds: float = 0.0
    samples: list[dict[str, float]] = dataclasses.field(default_factory=list)
    rss_warm_kib: float = 0.0
    rss_late_kib: float = 0.0
    rss_growth_kib: float = 0.0
    rss_slope_kib_per_min: float = 0.0
    server_log_errors: list[str] = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0
    client_lag_ms: float = 0.0
    server_lag_ms: float = 0.0
    """The server's worst event-loop lag seen by the samples."""
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    load: list[float] = dataclasses.field(default_factory=list)
    """Load average (1 min): lowest, median, highest over the samples."""

    def summary(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["samples"] = len(self.samples)
        data["unanswered_samples"] = sum("stats_error" in s for s in self.samples)
        return data


class _Client:
    """One logical client: a topic and how far it has read, across its connections."""

    __slots__ = (
        "duplicated",
        "foreign",
        "gaps",
        "id_errors",
        "last_id",
        "last_position",
        "last_seq",
        "lost",
        "miscounted",
        "received",
        "skip",
        "stream",
        "topic",
    )

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.last_id: bytes | None = None  # sent back as Last-Event-ID, as a browser does
        self.last_position: tuple[int, int] | None = None
        self.last_seq: int | None = None
        self.skip: int | None = None  # events a gap announced missing; -1: unknown how many
        self.received = 0
        self.lost = 0
        self.duplicated = 0
        self.miscounted = 0
        self.foreign = 0
        self.id_errors = 0
        self.gaps: list[str] = []
        self.stream: _Stream | None = None

    def on_message(self, id_line: bytes | None, data: bytes) -> None:
        event = orjson.loads(data)
        if id_line is None or event["id"] != id_line.decode():
            self.id_errors += 1
        if event["type"] == "gap":
            reason = event["data"]["reason"]
            self.gaps.append(reason)
            missed = event["data"]["missed"]
            announced = missed if reason == "overflow" and isinstance(missed, int) else -1
            if self.skip is None:
                self.skip = announced
            elif self.skip >= 0 and announced >= 0:
                self.skip += announced
            else:
                self.skip = -1
            self.last_id = id_line
            return
        if event["topic"] != self.topic:
            self.foreign += 1
            return
        ms, _, sequence = event["id"].partition("-")
        position = (int(ms), int(sequence))
        if self.last_position is not None and position <= self.last_position:
            self.id_errors += 1
        seq = event["data"]["seq"]
        if self.last_seq is not None:
            if seq <= self.last_seq:
                self.duplicated += 1
                return
            if self.skip is None:
                self.lost += seq - self.last_seq - 1
            elif self.skip >= 0 and seq != self.last_seq + 1 + self.skip:
                self.miscounted += 1
        self.skip = None
        self.last_seq = seq
        self.last_position = position
        self.last_id = id_line
        self.received += 1


class _Stream(asyncio.Protocol):
    """One SSE connection: HTTP/1.1 response head, chunked body, SSE messages."""

    def __init__(self, fleet: _Fleet, client: _Client, request: bytes) -> None:
        self.fleet = fleet
        self.client = client
        self.request = request
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.chunked = False
        self.chunk_buffer = b""
        self.chunk_left = 0  # bytes left in the current chunk; -1: its CRLF is next
        self.tail = b""
        self.leaving = False  # we close it: its end is not the server's doing

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
            return
        if not self.leaving:
            self.fleet.server_closed(self)

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end].lower(), self.head[end + 4 :]
            self.head = b""
            self.chunked = b"\r\ntransfer-encoding: chunked" in head
            self.ready.set_result(head.startswith(b"http/1.1 200"))
        body = self._dechunk(data) if self.chunked else data
        buffer = self.tail + body if self.tail else body
        blocks = buffer.split(b"\n\n")
        self.tail = blocks.pop()
        client = self.client
        for block in blocks:
            id_line: bytes | None = None
            payload: bytes | None = None
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    payload = line[6:]
                elif line.startswith(b"id: "):
                    id_line = line[4:]
            if payload is not None:
                client.on_message(id_line, payload)

    def _dechunk(self, data: bytes) -> bytes:
        buffer = self.chunk_buffer + data if self.chunk_buffer else data
        out: list[bytes] = []
        at = 0
        while at < len(buffer):
            if self.chunk_left > 0:
                piece = buffer[at : at + self.chunk_left]
                out.append(piece)
                at += len(piece)
                self.chunk_left -= len(piece)
                if self.chunk_left == 0:
                    self.chunk_left = -1
            elif self.chunk_left < 0:
                if len(buffer) - at < 2:
                    break
                at += 2
                self.chunk_left = 0
            else:
                end = buffer.find(b"\r\n", at)
                if end < 0:
                    break
                size = int(buffer[at:end].split(b";")[0], 16)
                at = end + 2
                if size == 0:  # the server ended the stream
                    at = len(buffer)
                    break
                self.chunk_left = size
        self.chunk_buffer = buffer[at:]
        return b"".join(out)

    def leave(self, abort: bool) -> None:
        self.leaving = True
        assert self.transport is not None
        if abort:
            self.transport.abort()
        else:
            self.transport.close()


class _Fleet:
    def __init__(self, config: SoakConfig, port: int, result: SoakResult) -> None:
        self.config = config
        self.port = port
        self.result = result
        self.rng = random.Random(config.seed)
        self.topics = [f"t{i}" for i in range(config.topics)]
        self.clients: list[_Client] = []
        self.connected: set[_Client] = set()
        self.pending: set[asyncio.Task[None]] = set()
        self.stopping = False

    def new_client(self) -> _Client:
        client = _Client(self.topics[len(self.clients) % len(self.topics)])
        self.clients.append(client)
        return client

    async def connect(self, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        headers = f"GET /topics/{client.topic}/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        headers += "Accept: text/event-stream\r\n"
        resume = client.last_id is not None
        if client.last_id is not None:
            headers += f"Last-Event-ID: {client.last_id.decode()}\r\n"
        request = (headers + "\r\n").encode()
        try:
            transport, stream = await loop.create_connection(
                lambda: _Stream(self, client, request), "127.0.0.1", self.port
            )
        except OSError:
            self.result.failed_connects += 1
            return
        try:
            ok = await asyncio.wait_for(stream.ready, 60)
        except TimeoutError:
            ok = False
        if not ok:  # given up on, as a browser would: closed, so the server must free it
            self.result.failed_connects += 1
            stream.leaving = True
            transport.abort()
            return
        client.stream = stream
        self.connected.add(client)
        self.result.connections += 1
        self.result.resumed += resume

    def disconnect(self, client: _Client, abort: bool) -> None:
        assert client.stream is not None
        client.stream.leave(abort)
        client.stream = None
        self.connected.discard(client)
        if abort:
            self.result.aborted += 1
        else:
            self.result.closed += 1

    def server_closed(self, stream: _Stream) -> None:
        """The server ended a stream we were reading: count it, and reconnect like a browser."""
        client = stream.client
        self.result.server_closes += 1
        if client.stream is stream:
            client.stream = None
            self.connected.discard(client)
            if not self.stopping:
                self._spawn(self._reconnect(client, self.rng.uniform(0, 1)))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _reconnect(self, client: _Client, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.connect(client)

    async def churn(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        config, rng = self.config, self.rng
        per_tick = config.clients * config.churn / 10
        owed = 0.0
        end = loop.time() + seconds
        while loop.time() < end:
            await asyncio.sleep(0.1)
            owed += per_tick
            count = min(int(owed), len(self.connected))
            owed -= count
            for client in rng.sample(sorted(self.connected, key=id), count):
                self.disconnect(client, abort=rng.random() < 0.5)
                if rng.random() < config.replace:
                    self.result.replaced += 1
                    client = self.new_client()
                delay = rng.uniform(0, config.reconnect_delay)
                self._spawn(self._reconnect(client, delay))
        while self.pending:
            await asyncio.gather(*self.pending)

    def close_all(self) -> None:
        self.stopping = True
        for index, client in enumerate(list(self.connected)):
            self.disconnect(client, abort=index % 2 == 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise RuntimeError(f"{needed} file descriptors needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _wait_for(condition: Any, limit: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def _soak(config: SoakConfig, port: int, pid: int, result: SoakResult) -> None:
    loop = asyncio.get_running_loop()
    fleet = _Fleet(config, port, result)
    # Generous timeouts: on a busy machine a server with 10,000 streams answers slowly.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:

        async def stats() -> dict[str, Any]:
            answer: dict[str, Any] = (await http.get("/stats")).raise_for_status().json()
            return answer

        result.fds_before_clients = (await stats())["fds"]
        started = loop.time()
        initial = [fleet.new_client() for _ in range(config.clients)]
        for start in range(0, len(initial), 250):  # in batches: the accept queue is finite
            await asyncio.gather(*(fleet.connect(c) for c in initial[start : start + 250]))
        result.connect_seconds = loop.time() - started
        # Every client's objects live to the end: keep the collector from scanning them again
        # and again, or this process reads late.
        gc.freeze()

        async def sample(interval: float) -> None:
            began = loop.time()
            while True:
                asked = loop.time()
                sample: dict[str, Any] = {"t": asked - began, "rss_kib": rss_kib(pid)}
                try:
                    server = await stats()
                except httpx.TransportError as exc:  # a busy server answers late: note it
                    sample["stats_error"] = repr(exc)
                else:
                    sample |= {
                        "stats_ms": round((loop.time() - asked) * 1000, 1),
                        "connected": len(fleet.connected),
                        **{key: server[key] for key in _SAMPLED},
                    }
                sample["load"] = os.getloadavg()[0]
                result.samples.append(sample)
                slept = loop.time()
                await asyncio.sleep(interval)
                # This process's own loop lag: a starved client reads late.
                result.client_lag_ms = max(
                    result.client_lag_ms, (loop.time() - slept - interval) * 1000
                )

        sampler = loop.create_task(sample(min(5.0, max(0.2, config.seconds / 60))))
        try:
            await fleet.churn(config.seconds)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

        # Every client reconnected by now; give the last ones time to see an event live.
        await asyncio.sleep(max(1.0, 2 / config.topic_rate))
        final = (await http.post("/stop")).raise_for_status().json()
        result.published = final["published"]
        last_seq: dict[str, int] = final["last_seq"]

        def behind() -> list[_Client]:
            return [c for c in fleet.connected if c.last_seq != last_seq[c.topic]]

        async def caught_up() -> bool:
            return not behind()

        await _wait_for(caught_up, 60)
        result.incomplete = len(behind())
        result.open_at_end = len(fleet.connected)
        result.server_at_end = await stats()

        fleet.close_all()
        closed_at = loop.time()

        async def freed() -> bool:
            server = await stats()
            return bool(server["subscriptions"] == 0 and server["handlers_running"] == 0)

        await _wait_for(freed, 60)
        result.freed_seconds = loop.time() - closed_at
        await asyncio.sleep(0.5)  # let the last sockets' closing finish before counting fds
        result.server_after_close = await stats()

    _tally(fleet, result)


_SAMPLED = (
    "subscriptions",
    "handlers_running",
    "fds",
    "tasks",
    "cpu_seconds",
    "loop_lag_ms",
    "gc_collections",
    "gc_seconds",
)


def _tally(fleet: _Fleet, result: SoakResult) -> None:
    clients = fleet.clients
    result.clients = len(clients)
    result.kept_up = sum(not c.gaps for c in clients)
    result.events = sum(c.received for c in clients)
    result.lost = sum(c.lost for c in clients)
    result.duplicated = sum(c.duplicated for c in clients)
    result.miscounted_gaps = sum(c.miscounted for c in clients)
    result.foreign = sum(c.foreign for c in clients)
    result.id_errors = sum(c.id_errors for c in clients)
    result.gaps = dict(Counter(reason for c in clients for reason in c.gaps))
    answered = [s for s in result.samples if "stats_error" not in s]
    result.server_lag_ms = max((s["loop_lag_ms"] for s in answered), default=0.0)
    result.server_cpu_seconds = result.server_after_close.get("cpu_seconds", 0.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.client_cpu_seconds = usage.ru_utime + usage.ru_stime
    loads = sorted(s["load"] for s in result.samples)
    if loads:
        result.load = [loads[0], statistics.median(loads), loads[-1]]
    warm = [s for s in result.samples if s["t"] >= result.samples[-1]["t"] * 0.25]
    if len(warm) >= 4:
        half = len(warm) // 2
        result.rss_warm_kib = statistics.median(s["rss_kib"] for s in warm[:half])
        result.rss_late_kib = statistics.median(s["rss_kib"] for s in warm[half:])
        result.rss_growth_kib = result.rss_late_kib - result.rss_warm_kib
        slope = statistics.linear_regression([s["t"] for s in warm], [s["rss_kib"] for s in warm])
        result.rss_slope_kib_per_min = slope.slope * 60


def run_soak(config: SoakConfig) -> SoakResult:
    """Run the soak `config` describes against a fresh server process; check nothing here."""
    _raise_fd_limit(config.clients + 1024)
    port = _free_port()
    result = SoakResult(config)
    began = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "tests.soak.server",
        str(port),
        f"--topics={config.topics}",
        f"--topic-rate={config.topic_rate}",
        f"--payload={config.payload}",
        f"--replay-seconds={config.replay_seconds}",
        f"--stack={config.stack}",
    ]
    if config.gc_threshold is not None:
        command += ["--gc-threshold", *(str(n) for n in config.gc_threshold)]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_listening(port, server)
            asyncio.run(_soak(config, port, server.pid, result))
        finally:
            gc.unfreeze()
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.seek(0)
            result.server_log_errors = [
                line.rstrip() for line in log if "error" in line.lower() or "Traceback" in line
            ]
    result.wall_seconds = time.monotonic() - began
    return result


def _wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).raise_for_status()
            return
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the soak server did not start") from None
            time.sleep(0.1)

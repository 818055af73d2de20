"""Helpers for tests against the real Redis at 127.0.0.1:6379: unique key prefixes, cleanup.

These tests fail, never skip, when Redis is not answering: `.ci/run` starts it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import redis
import redis.asyncio as aioredis

from chronos.stream.redis import RedisBroker

REDIS_URL = os.environ.get("CHRONOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_prefix() -> str:
    return f"chronos-test:{uuid.uuid4().hex[:12]}:"


def require_redis(url: str = REDIS_URL) -> None:
    """Fail loudly (not skip) when Redis does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise AssertionError(
            f"Redis at {url} is not answering ({exc}); start it (.ci/run)"
        ) from exc
    finally:
        client.close()


async def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_brokers(**options: object) -> AsyncIterator[list[RedisBroker]]:
    """A list to append brokers to (sharing one fresh prefix); closed and cleaned up after."""
    require_redis()
    brokers: list[RedisBroker] = []
    try:
        yield brokers
    finally:
        prefixes = {b.key_prefix for b in brokers}
        for broker in brokers:
            await broker.aclose()
        for prefix in prefixes:
            await delete_prefix(prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A throwaway `redis-server` on a free port, without persistence, stopped by its pid."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed"
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                require_redis(self.url)
                return
            except AssertionError:
                assert self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()

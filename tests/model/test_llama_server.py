"""The OpenAI provider against a real OpenAI-compatible server nobody here wrote.

llama-cpp-python's own server (`python -m llama_cpp.server`) runs in a subprocess on
127.0.0.1, serving the SmolLM2 GGUF the `local` extra ships; the OpenAI provider talks to it
through `base_url`, as it would to vLLM, LM Studio or llama.cpp's C++ server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse

from chronos.model import ChatRequest, Message
from chronos.model.llamacpp import default_model_path
from chronos.model.openai import OpenAIProvider

REQUEST = ChatRequest(
    messages=[Message(role="user", content="Tell me a story about a robot")],
    max_tokens=24,
    temperature=0.0,
    seed=42,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (`.../v1`) of a llama-cpp-python server started for this module."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(default_model_path()),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_until_ready(server, url, log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within 120 s:\n{log.read_text()}")


def provider(url: str) -> OpenAIProvider:
    # The server takes any key. No headers of our own: the provider must declare its JSON
    # body (FastAPI-based servers such as this one and vLLM reject a body without it).
    return OpenAIProvider("smollm2", base_url=url, api_key="unused")


@pytest.mark.anyio
async def test_streamed_text_equals_chat_at_temperature_zero_with_a_seed(server_url: str) -> None:
    openai = provider(server_url)
    try:
        chunks = [chunk async for chunk in openai.stream_chat(REQUEST)]
        whole = await openai.chat(REQUEST)
    finally:
        await openai.aclose()

    streamed = "".join(chunk.content for chunk in chunks)
    assert len([chunk for chunk in chunks if chunk.content]) > 5
    assert streamed.strip()
    assert streamed == whole.content
    assert whole.raw_stop_reason == "length"


@pytest.mark.anyio
async def test_the_provider_reads_what_is_on_the_wire(server_url: str) -> None:
    """The same request sent by hand (httpx + httpx-sse) gives the same text."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": REQUEST.messages[0].text}],
        "max_tokens": REQUEST.max_tokens,
        "temperature": REQUEST.temperature,
        "seed": REQUEST.seed,
        "stream": True,
    }
    pieces: list[str] = []
    async with (
        httpx.AsyncClient(timeout=60) as client,
        aconnect_sse(client, "POST", f"{server_url}/chat/completions", json=body) as source,
    ):
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            delta = orjson.loads(event.data)["choices"][0]["delta"]
            pieces.append(delta.get("content") or "")
    openai = provider(server_url)
    try:
        whole = await openai.chat(REQUEST)
    finally:
        await openai.aclose()

    assert "".join(pieces).strip()
    assert whole.content == "".join(pieces)

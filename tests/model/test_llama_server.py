"""The OpenAI provider against a real OpenAI-compatible server nobody here wrote.

llama.cpp's own HTTP server (`tools/server`, which xllamacpp compiles in and starts for each
`xllamacpp.Server`) runs in a subprocess on 127.0.0.1, serving the SmolLM2 GGUF that the
local model set-up installs; the OpenAI provider talks to it through `base_url`, as it would
to vLLM, LM Studio or a `llama-server` binary.
"""

from __future__ import annotations

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

# The child prints where llama.cpp listens, then serves until its stdin closes.
_SERVE = """
import sys, xllamacpp
params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.n_ctx = 2048
params.n_parallel = 1
params.cpuparams.n_threads = 1  # its threads stall each other on a busy machine
params.cpuparams_batch.n_threads = 1
params.hostnames = ["127.0.0.1"]
params.port = 0
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (`.../v1`) of a llama.cpp server started for this module."""
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(default_model_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert server.stdout is not None
        address = server.stdout.readline().decode().strip()
        if not address.startswith("http://127.0.0.1:"):
            server.wait(timeout=20)
            pytest.fail(f"llama.cpp's server did not start ({server.returncode}):\n"
                        f"{log_path.read_text()}")
        url = f"{address}/v1"
        wait_until_ready(url, log_path)
        yield url
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the child's read returns, and it exits
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_ready(url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama.cpp's server did not answer within 120 s:\n{log.read_text()}")


def provider(url: str) -> OpenAIProvider:
    # The server takes any key, and no headers of ours: what the provider sends must do.
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

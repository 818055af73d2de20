"""Consumer-side throughput of an OpenAI-format stream: chronos vs the openai SDK vs the floor.

A server in its own process streams N Chat Completions chunks (text, then two parallel tool
calls in fragments, a finish reason, a usage chunk, `[DONE]`). Each client consumes the whole
stream; best of 5 streams
over one client and connection (set-up excluded, bench/_harness.py); CPU is the client process's.

The body is sent in two framings, each a row group of its own:

- "coalesced" (the main workload): the events back to back in 64 KiB chunked-encoding
  frames, as a client sees a stream it reads behind a buffering proxy or CDN (OpenAI and
  Anthropic sit behind Cloudflare, which re-chunks), or any stream it falls behind on.
- "per-event": one chunked-encoding frame per event, as an origin server writes them one by
  one. There every HTTP client pays its HTTP layer's cost per frame (httpcore + h11: about
  19 us here), whatever it does with the event.

    .venv/bin/python bench/model_openai_stream.py [N [CLIENTS]]
    .venv/bin/python bench/model_openai_stream.py 100000 raw,bare,chronos

N defaults to 20000; CLIENTS keeps only the rows whose name contains one of these words.
"""

import asyncio
import contextlib
import json
import sys

import httpx
import httpx_sse
import orjson
from _harness import abest_of, assemble, best_of, read_request, serve_forever, start_server

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ONLY = sys.argv[2].lower().split(",") if len(sys.argv) > 2 else None
FRAME = 65536
FRAMINGS = ("coalesced", "per-event")


def events(n):
    out = []
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    text_n = n - 200
    for i in range(text_n):
        out.append(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
            }
        )
    for i in range(196):
        k = i % 2
        d = {"index": k, "function": {"arguments": '"ab", '}}
        if i < 2:
            d = {
                "index": k,
                "id": f"call_{k}",
                "type": "function",
                "function": {"name": "f", "arguments": '{"x": ['},
            }
        out.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [d]}, "finish_reason": None}]}
        )
    for k in range(2):
        out.append(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": k, "function": {"arguments": '"z"]}'}}]},
                        "finish_reason": None,
                    }
                ],
            }
        )
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1},
        }
    )
    return out


def sse_frames(n):
    return [
        b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events(n)
    ] + [b"data: [DONE]\n\n"]


def chunked(pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def body(n, framing):
    frames = sse_frames(n)
    if framing == "per-event":
        return chunked(frames)
    data = b"".join(frames)
    return chunked([data[i : i + FRAME] for i in range(0, len(data), FRAME)])


def serve(port_q, n):
    payloads = {framing: body(n, framing) for framing in FRAMINGS}

    async def handle(reader, writer):
        while (head := await read_request(reader)) is not None:  # keep-alive: one per client
            request_line = head.split(b"\r\n", 1)[0]
            payload = payloads["per-event" if b"/per-event/" in request_line else "coalesced"]
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            try:
                for i in range(0, len(payload), FRAME):
                    writer.write(payload[i : i + FRAME])
                    await writer.drain()
            except ConnectionError:
                break
        writer.close()

    serve_forever(handle, port_q)


# Each client is set up once (an httpx client alone costs ~30 ms of CPU to create, mostly
# its TLS context), then timed stream by stream over its kept-alive connection.


@contextlib.asynccontextmanager
async def raw_bytes(url):
    """Reading the body and nothing else: what any client's per-chunk work is added to."""
    async with httpx.AsyncClient(timeout=60) as client:

        async def run():
            async with client.stream(
                "POST", url + "/chat/completions", json={"stream": True}
            ) as response:
                async for _ in response.aiter_raw():
                    pass
            return N

        yield run


@contextlib.asynccontextmanager
async def bare(url):
    async with httpx.AsyncClient(timeout=60) as client:

        async def run():
            count = 0
            async with httpx_sse.aconnect_sse(
                client, "POST", url + "/chat/completions", json={"stream": True}
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.data == "[DONE]":
                        break
                    orjson.loads(sse.data)
                    count += 1
            return count

        yield run


@contextlib.asynccontextmanager
async def chronos_run(url):
    from chronos.model import ChatRequest, Message, OpenAIProvider

    provider = OpenAIProvider("gpt-x", base_url=url, api_key="k")
    req = ChatRequest(messages=[Message("user", "hi")])

    async def run():
        count = 0
        tool_calls = []
        async for chunk in provider.stream_chat(req):
            tool_calls.extend(chunk.tool_calls)
            count += 1
        assert len(tool_calls) == 2, tool_calls
        assert all(len(orjson.loads(c.arguments)["x"]) == 98 for c in tool_calls)
        assert count >= N - 200, count  # every text chunk came out on its own
        return N  # rates are per server event for every client

    async with provider:
        yield run


@contextlib.asynccontextmanager
async def openai_sdk(url):
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)

    async def run():
        count = 0
        stream = await client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for _ in stream:
            count += 1
        return count

    async with client:
        yield run


@contextlib.asynccontextmanager
async def openai_sdk_helper(url):
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)

    async def run():
        count = 0
        async with client.chat.completions.stream(
            model="gpt-x", messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for event in stream:
                if event.type == "chunk":
                    count += 1
            final = await stream.get_final_completion()
        assert len(final.choices[0].message.tool_calls or ()) == 2
        return count

    async with client:
        yield run


def sans_io():
    """chronos's own share: SSE decoding, translation and chunk assembly, no HTTP."""
    from chronos.model.openai import OpenAIProvider

    data = b"".join(sse_frames(N))
    pieces = [data[i : i + FRAME] for i in range(0, len(data), FRAME)]
    provider = OpenAIProvider("gpt-x", api_key="k")
    _, cpu, _ = best_of(lambda: assemble(provider, pieces))
    row("chronos sans-IO (no HTTP)", N, cpu, cpu)


def row(name, n, wall, cpu):
    print(f"{name:36s} {n:7d} chunks {n / wall:10,.0f} chunks/s {cpu / n * 1e6:7.2f} us CPU/chunk",
          flush=True)


async def measure(name, client, url):
    async with client(url) as run:
        wall, cpu, n = await abest_of(run)
    row(name, n, wall, cpu)


CLIENTS = (
    ("raw httpx body read (no parsing)", raw_bytes),
    ("bare httpx+httpx-sse+orjson", bare),
    ("chronos OpenAIProvider", chronos_run),
    ("openai SDK create(stream=True)", openai_sdk),
    ("openai SDK .stream() helper", openai_sdk_helper),
)


if __name__ == "__main__":
    proc, url = start_server(serve, N)
    sans_io()
    for framing in FRAMINGS:
        print(f"-- {framing} framing", flush=True)
        base = url + ("/per-event" if framing == "per-event" else "")
        for name, fn in CLIENTS:
            if ONLY and not any(word in name.lower() for word in ONLY):
                continue
            asyncio.run(measure(name, fn, base))
    proc.terminate()

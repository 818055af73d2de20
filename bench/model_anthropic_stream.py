"""Consumer-side throughput of an Anthropic Messages stream: chronos, anthropic SDK, floor.

A server in its own process streams N SSE events as the Messages API does (`message_start`,
a thinking block, a text block of deltas with a `ping` every 1,000 events, two `tool_use`
blocks whose input arrives in `input_json_delta` fragments, `message_delta`,
`message_stop`). Each client consumes the whole stream; best of 5 streams over one client
and connection (set-up excluded); CPU is the client process's. Rates are per server event,
for every client, so they compare (chronos yields no chunk for ping/start/stop events and
merges nothing). As in `model_openai_stream.py`, the body is sent "coalesced" (64 KiB
chunked-encoding frames, as through a buffering proxy or CDN: the main workload) and
"per-event" (one frame per event, as an origin server writes them).

    .venv/bin/python bench/model_anthropic_stream.py [N [CLIENTS]]
    .venv/bin/python bench/model_anthropic_stream.py 100000 raw,bare,chronos

N defaults to 20000; CLIENTS keeps only the rows whose name contains one of these words.
"""

import asyncio
import contextlib
import json
import sys
import time

import httpx
import httpx_sse
import orjson
from _harness import abest_of, assemble, best_of, read_request, serve_forever, start_server

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ONLY = sys.argv[2].lower().split(",") if len(sys.argv) > 2 else None
TOOL_FRAGMENTS = 100  # per tool call
FRAME = 65536
FRAMINGS = ("coalesced", "per-event")


def events(n):
    usage = {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": 1}
    out = [{"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}]
    out.append({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
    for i in range(50):
        out.append({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": f"think{i} "}})
    out.append({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}})
    out.append({"type": "content_block_stop", "index": 0})
    out.append({"type": "content_block_start", "index": 1,
                "content_block": {"type": "text", "text": ""}})
    tail = 2 * (TOOL_FRAGMENTS + 2) + 3  # tool blocks, text stop, message_delta, message_stop
    i = 0
    while len(out) < n - tail:
        if i % 1000 == 999:
            out.append({"type": "ping"})
        else:
            out.append({"type": "content_block_delta", "index": 1,
                        "delta": {"type": "text_delta", "text": f"tok{i} "}})
        i += 1
    out.append({"type": "content_block_stop", "index": 1})
    for k, index in enumerate((2, 3)):
        out.append({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": f"toolu_{k}", "name": "f", "input": {}}})
        pieces = ['{"x": ['] + ['"ab", '] * (TOOL_FRAGMENTS - 2) + ['"z"]}']
        for piece in pieces:
            out.append({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}})
        out.append({"type": "content_block_stop", "index": index})
    out.append({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                   "stop_sequence": None},
                "usage": {"output_tokens": n}})
    out.append({"type": "message_stop"})
    assert len(out) == n, (len(out), n)
    return out


def sse_frames(n):
    return [
        b"event: " + e["type"].encode() + b"\ndata: "
        + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
        for e in events(n)
    ]


def chunked(pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def body(n, framing):
    frames = sse_frames(n)
    if framing == "per-event":
        return chunked(frames)
    data = b"".join(frames)
    return chunked([data[i : i + FRAME] for i in range(0, len(data), FRAME)])


def short_body():
    frames = [
        b"event: " + e["type"].encode() + b"\ndata: "
        + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
        for e in (*events(N)[:1],
                  {"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}},
                  {"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "Hi"}},
                  {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                   "usage": {"output_tokens": 1}},
                  {"type": "message_stop"})
    ]
    return chunked(frames)


def serve(port_q, n):
    payloads = {framing: body(n, framing) for framing in FRAMINGS}
    short = short_body()  # for time to first chunk: nothing else in flight

    async def handle(reader, writer):
        while (head := await read_request(reader)) is not None:  # keep-alive, as the SDKs do
            request_line = head.split(b"\r\n", 1)[0]
            if b"/ttfc/" in request_line:
                data = short
            else:
                data = payloads["per-event" if b"/per-event/" in request_line else "coalesced"]
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            try:
                for i in range(0, len(data), FRAME):
                    writer.write(data[i : i + FRAME])
                    await writer.drain()
            except ConnectionError:  # a client that stopped reading early
                break
        writer.close()

    serve_forever(handle, port_q)


# Each client is set up once (an httpx client alone costs ~30 ms of CPU to create, mostly
# its TLS context), then timed stream by stream over its kept-alive connection.


@contextlib.asynccontextmanager
async def raw_bytes(url):
    """Reading the body and nothing else: what any client's per-event work is added to."""
    async with httpx.AsyncClient(timeout=60) as client:

        async def run():
            async with client.stream("POST", url + "/v1/messages", json={"stream": True}) as r:
                async for _ in r.aiter_raw():
                    pass

        yield run


@contextlib.asynccontextmanager
async def bare(url):
    async with httpx.AsyncClient(timeout=60) as client:

        async def run():
            count = 0
            async with httpx_sse.aconnect_sse(
                client, "POST", url + "/v1/messages", json={"stream": True}
            ) as source:
                async for sse in source.aiter_sse():
                    orjson.loads(sse.data)
                    count += 1
                    if sse.event == "message_stop":
                        break
            assert count == N

        yield run


@contextlib.asynccontextmanager
async def chronos_run(url):
    from chronos.model import AnthropicProvider, ChatRequest, Message

    provider = AnthropicProvider("claude-x", base_url=url + "/v1", api_key="k")
    req = ChatRequest(messages=[Message("user", "hi")])

    async def run():
        tool_calls = []
        text = 0
        async for chunk in provider.stream_chat(req):
            tool_calls.extend(chunk.tool_calls)
            text += len(chunk.content)
        assert len(tool_calls) == 2
        assert all(len(orjson.loads(c.arguments)["x"]) == TOOL_FRAGMENTS - 1 for c in tool_calls)
        assert text > 0

    async with provider:
        yield run


@contextlib.asynccontextmanager
async def sdk_create(url):
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)

    async def run():
        stream = await client.messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        async for _ in stream:
            pass

    async with client:
        yield run


@contextlib.asynccontextmanager
async def sdk_stream_helper(url):
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)

    async def run():
        async with client.messages.stream(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for _ in stream:
                pass
            message = await stream.get_final_message()
        assert sum(block.type == "tool_use" for block in message.content) == 2

    async with client:
        yield run


async def first_chunk(url, reps=30):
    """Median time from sending the request to the first chunk, vs to the first raw bytes."""
    from chronos.model import AnthropicProvider, ChatRequest, Message

    provider = AnthropicProvider("claude-x", base_url=url + "/ttfc/v1", api_key="k")
    req = ChatRequest(messages=[Message("user", "hi")])
    raw, ours = [], []
    async with httpx.AsyncClient(timeout=60) as client, provider:
        for _ in range(reps):
            t0 = time.perf_counter()
            async with client.stream("POST", url + "/ttfc/v1/messages", json={"stream": True},
                                     headers={"content-type": "application/json"}) as r:
                first = True
                async for _ in r.aiter_raw():
                    if first:
                        raw.append(time.perf_counter() - t0)
                        first = False
            t0 = time.perf_counter()
            async with provider.stream_chat(req) as stream:
                async for _ in stream:
                    ours.append(time.perf_counter() - t0)
                    break
                async for _ in stream:  # read to the end: both keep their connection
                    pass
    raw.sort()
    ours.sort()
    print(f"time to first chunk (median of {reps}): raw httpx first bytes "
          f"{raw[reps // 2] * 1e3:.2f} ms, chronos first chunk {ours[reps // 2] * 1e3:.2f} ms, "
          f"overhead {(ours[reps // 2] - raw[reps // 2]) * 1e3:.2f} ms")


def sans_io():
    """chronos's own share: SSE decoding, translation and chunk assembly, no HTTP."""
    from chronos.model.anthropic import AnthropicProvider

    data = b"".join(sse_frames(N))
    pieces = [data[i : i + FRAME] for i in range(0, len(data), FRAME)]
    provider = AnthropicProvider("claude-x", api_key="k")
    _, cpu, _ = best_of(lambda: assemble(provider, pieces))
    row("chronos sans-IO (no HTTP)", cpu, cpu)


def row(name, wall, cpu):
    print(f"{name:36s} {N:7d} events {N / wall:10,.0f} events/s {cpu / N * 1e6:7.2f} us CPU/event",
          flush=True)


async def measure(name, client, url):
    async with client(url) as run:
        wall, cpu, _ = await abest_of(run)
    row(name, wall, cpu)


CLIENTS = (
    ("raw httpx body read (no parsing)", raw_bytes),
    ("bare httpx+httpx-sse+orjson", bare),
    ("chronos AnthropicProvider", chronos_run),
    ("anthropic SDK create(stream=True)", sdk_create),
    ("anthropic SDK .stream() helper", sdk_stream_helper),
)


if __name__ == "__main__":
    proc, url = start_server(serve, N)
    sans_io()
    for framing in FRAMINGS:
        print(f"-- {framing} framing", flush=True)
        base = url + ("/per-event" if framing == "per-event" else "")
        for name, client in CLIENTS:
            if ONLY and not any(word in name.lower() for word in ONLY):
                continue
            asyncio.run(measure(name, client, base))
    asyncio.run(first_chunk(url))
    proc.terminate()

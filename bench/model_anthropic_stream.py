"""Consumer-side throughput of an Anthropic Messages stream: chronos, anthropic SDK, floor.

A server in its own process streams N SSE events as the Messages API does (`message_start`,
a thinking block, a text block of deltas with a `ping` every 1,000 events, two `tool_use`
blocks whose input arrives in `input_json_delta` fragments, `message_delta`,
`message_stop`), one chunked-encoding frame per event. Each client consumes the whole stream;
best of 5 runs; CPU is the client process's. Rates are per server event, for every client,
so they compare (chronos yields no chunk for ping/start/stop events and merges nothing).

    .venv/bin/python bench/model_anthropic_stream.py [N]      # N defaults to 20000
"""

import asyncio
import json
import multiprocessing
import sys
import time

import httpx
import httpx_sse
import orjson

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
TOOL_FRAGMENTS = 100  # per tool call


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


def body(n):
    frames = [
        b"event: " + e["type"].encode() + b"\ndata: "
        + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
        for e in events(n)
    ]
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


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
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


def serve(port_q, n):
    payload = body(n)
    short = short_body()  # for time to first chunk: nothing else in flight

    async def handle(reader, writer):
        while True:  # keep-alive: the SDKs reuse their connection
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            data = short if b"/ttfc/" in head.split(b"\r\n", 1)[0] else payload
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            try:
                for i in range(0, len(data), 65536):
                    writer.write(data[i : i + 65536])
                    await writer.drain()
            except ConnectionError:  # a client that stopped reading early
                break
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def bare(url):
    count = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        httpx_sse.aconnect_sse(client, "POST", url + "/v1/messages", json={"stream": True})
        as source,
    ):
        async for sse in source.aiter_sse():
            orjson.loads(sse.data)
            count += 1
            if sse.event == "message_stop":
                break
    return count


async def chronos_run(url):
    from chronos.model import AnthropicProvider, ChatRequest, Message

    provider = AnthropicProvider("claude-x", base_url=url + "/v1", api_key="k")
    req = ChatRequest(messages=[Message("user", "hi")])
    tool_calls = []
    text = 0
    async with provider:
        async for chunk in provider.stream_chat(req):
            tool_calls.extend(chunk.tool_calls)
            text += len(chunk.content)
    assert len(tool_calls) == 2
    assert all(len(orjson.loads(c.arguments)["x"]) == TOOL_FRAGMENTS - 1 for c in tool_calls)
    assert text > 0
    return N


async def sdk_create(url):
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    count = 0
    stream = await client.messages.create(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )
    async for _ in stream:
        count += 1
    await client.close()
    return count


async def sdk_stream_helper(url):
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    count = 0
    async with client.messages.stream(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        async for _ in stream:
            count += 1
        message = await stream.get_final_message()
    assert sum(block.type == "tool_use" for block in message.content) == 2
    await client.close()
    return count


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


def sans_io(reps=5):
    """chronos's own share: SSE decoding, translation and chunk assembly, no HTTP."""
    from chronos.model._assemble import ChunkBuilder
    from chronos.model.anthropic import AnthropicProvider

    frames = [
        b"event: " + e["type"].encode() + b"\ndata: "
        + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
        for e in events(N)
    ]
    provider = AnthropicProvider("claude-x", api_key="k")
    best = None
    for _ in range(reps):
        c0 = time.process_time()
        translator = provider._new_translator()
        decoder = translator.new_decoder("text/event-stream")
        out = ChunkBuilder()
        for frame in frames:
            for event in decoder.feed(frame):
                translator.on_event(event, out)
                out.build()
        out.finish()
        cpu = time.process_time() - c0
        best = cpu if best is None else min(best, cpu)
    print(f"{'chronos sans-IO (no HTTP)':34s} {N:7d} events {N / best:10,.0f} events/s "
          f"{best / N * 1e6:6.2f} us CPU/event")


async def measure(name, fn, url, reps=5):
    best = None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        await fn(url)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    wall, cpu = best
    print(f"{name:34s} {N:7d} events {N / wall:10,.0f} events/s "
          f"{cpu / N * 1e6:6.2f} us CPU/event")


if __name__ == "__main__":
    q = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(q, N), daemon=True)
    proc.start()
    port = q.get()
    url = f"http://127.0.0.1:{port}"
    sans_io()
    asyncio.run(measure("bare httpx+httpx-sse+orjson", bare, url))
    asyncio.run(measure("chronos AnthropicProvider", chronos_run, url))
    asyncio.run(measure("anthropic SDK create(stream=True)", sdk_create, url))
    asyncio.run(measure("anthropic SDK .stream() helper", sdk_stream_helper, url))
    asyncio.run(first_chunk(url))
    proc.terminate()

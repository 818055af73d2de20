"""Consumer-side throughput of an OpenAI-format stream: chronos vs the openai SDK vs the floor.

A server in its own process streams N Chat Completions chunks (text, then two parallel tool
calls in fragments, a finish reason, a usage chunk, `[DONE]`), one chunked-encoding frame per
event, as OpenAI does. Each client consumes the whole stream; best of 5 runs; CPU is the
client process's.

    .venv/bin/python bench/model_openai_stream.py [N]      # N defaults to 20000
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


def body(n):
    events = []
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    text_n = n - 200
    for i in range(text_n):
        events.append(
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
        events.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [d]}, "finish_reason": None}]}
        )
    for k in range(2):
        events.append(
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
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1},
        }
    )
    frames = [
        b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events
    ] + [b"data: [DONE]\n\n"]
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


def serve(port_q, n):
    payload = body(n)

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for i in range(0, len(payload), 65536):
            writer.write(payload[i : i + 65536])
            await writer.drain()
        await writer.drain()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def bare(url):
    count = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        httpx_sse.aconnect_sse(client, "POST", url, json={"stream": True}) as source,
    ):
        async for sse in source.aiter_sse():
            if sse.data == "[DONE]":
                break
            orjson.loads(sse.data)
            count += 1
    return count


async def chronos_run(url):
    from chronos.model import ChatRequest, Message, OpenAIProvider

    provider = OpenAIProvider("gpt-x", base_url=url, api_key="k")
    req = ChatRequest(messages=[Message("user", "hi")])
    count = 0
    tool_calls = []
    async with provider:
        async for chunk in provider.stream_chat(req):
            tool_calls.extend(chunk.tool_calls)
            count += 1
    assert len(tool_calls) == 2, tool_calls
    return count


async def openai_sdk(url):
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="k")
    count = 0
    stream = await client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    async for _ in stream:
        count += 1
    await client.close()
    return count


async def measure(name, fn, url, reps=5):
    best = None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        n = await fn(url)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu, n)
    wall, cpu, n = best
    print(
        f"{name:28s} {n:6d} chunks  {n / wall:10,.0f} chunks/s  {cpu / n * 1e6:6.2f} us CPU/chunk"
    )


if __name__ == "__main__":
    q = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(q, N), daemon=True)
    proc.start()
    port = q.get()
    url = f"http://127.0.0.1:{port}"
    asyncio.run(measure("bare httpx+httpx-sse+orjson", bare, url + "/chat/completions"))
    asyncio.run(measure("chronos OpenAIProvider", chronos_run, url))
    asyncio.run(measure("openai SDK create(stream=True)", openai_sdk, url))
    proc.terminate()

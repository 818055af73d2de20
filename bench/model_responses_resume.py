"""The price of surviving a dropped connection: OpenAI Responses background-mode resume.

A server in its own process streams N Responses events (`response.created`, text deltas,
`response.completed`, each with its `sequence_number`) as a background response. For
`/cut/` requests it closes the connection after half the events, without ending the body,
and answers `GET /responses/{id}?stream=true&starting_after=n` with the events after `n`,
as OpenAI does. Measured with chronos's `OpenAIResponsesProvider(background=True)`:

- a whole stream without a drop, and the same stream with one drop, resumed (best of 5 each;
  the difference is the cost of a resume);
- the time to the first chunk after the drop: the gap between the last chunk before the cut
  and the next one (median of 30), beside the same continuation asked for explicitly with
  `resume_stream()` on a new connection (no drop to notice), a fresh HTTP request's time to
  its first bytes on the same server (the floor of any reconnect), and the normal gap
  between two chunks.

    .venv/bin/python bench/model_responses_resume.py [N]

N defaults to 2000.
"""

import asyncio
import statistics
import sys
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from _harness import read_request, serve_forever, start_server

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
RESPONSE_ID = "resp_bench"


def events(n):
    out = [{"type": "response.created", "response": {
        "id": RESPONSE_ID, "model": "gpt-x", "status": "in_progress", "background": True}}]
    out += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
             "content_index": 0, "delta": f"tok{i} "} for i in range(n - 2)]
    out.append({"type": "response.completed", "response": {
        "id": RESPONSE_ID, "model": "gpt-x", "status": "completed",
        "usage": {"input_tokens": 5, "output_tokens": n, "total_tokens": n + 5}}})
    return [b"event: " + e["type"].encode() + b"\ndata: "
            + orjson.dumps({**e, "sequence_number": seq}) + b"\n\n"
            for seq, e in enumerate(out)]


def chunked(data):
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def serve(port_q, n):
    sse = events(n)
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n")

    async def handle(reader, writer):
        while (request := await read_request(reader)) is not None:
            target = request.split(b" ", 2)[1].decode()
            if target.startswith("/first-bytes"):
                writer.write(head + chunked(sse[0]) + b"0\r\n\r\n")
                await writer.drain()
                continue
            query = parse_qs(urlsplit(target).query)
            if "starting_after" in query:
                body = b"".join(sse[int(query["starting_after"][0]) + 1 :])
            elif "/cut/" in target:
                writer.write(head + chunked(b"".join(sse[: n // 2])))
                await writer.drain()
                break  # the connection drops mid-body
            else:
                body = b"".join(sse)
            writer.write(head + chunked(body) + b"0\r\n\r\n")
            await writer.drain()
        writer.close()

    serve_forever(handle, port_q)


async def stream_once(provider, req):
    """(seconds, largest gap between two chunks, median gap, chunks)."""
    t0 = last = time.perf_counter()
    gaps = []
    text = []
    async for chunk in provider.stream_chat(req):
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        text.append(chunk.content)
    assert "".join(text) == "".join(f"tok{i} " for i in range(N - 2)), "lost or repeated text"
    return last - t0, max(gaps[1:]), statistics.median(gaps[1:]), len(gaps)


async def main(url):
    from chronos.model import ChatRequest, Message
    from chronos.model.openai_responses import OpenAIResponsesProvider

    req = ChatRequest(messages=[Message("user", "hi")])
    whole = OpenAIResponsesProvider("gpt-x", base_url=url + "/v1", api_key="k",
                                    background=True)
    cut = OpenAIResponsesProvider("gpt-x", base_url=url + "/cut/v1", api_key="k",
                                  background=True)
    async with whole, cut, httpx.AsyncClient() as client:
        for name, provider in (("no drop", whole), ("one drop, resumed", cut)):
            best = min([await stream_once(provider, req) for _ in range(5)])
            print(f"{name:20s} {N} events: whole stream {best[0] * 1e3:8.2f} ms", flush=True)
        gaps = sorted([(await stream_once(cut, req))[1] for _ in range(30)])
        normal = statistics.median([(await stream_once(whole, req))[2] for _ in range(5)])
        firsts = []
        for _ in range(30):
            t0 = time.perf_counter()
            # A new connection each time, as a resume needs one.
            async with client.stream("GET", url + "/first-bytes",
                                     headers={"connection": "close"}) as response:
                body = response.aiter_raw()
                await anext(body)
                firsts.append(time.perf_counter() - t0)
                async for _ in body:
                    pass
        firsts.sort()
        explicit = []
        # The same continuation asked for directly; leaving it early closes its connection,
        # so each one opens a new connection, as a resume does.
        for _ in range(31):
            t0 = time.perf_counter()
            async with whole.resume_stream(RESPONSE_ID, after=N // 2 - 1) as chunks:
                async for _ in chunks:
                    explicit.append(time.perf_counter() - t0)
                    break
        explicit = sorted(explicit[1:])
    print(f"time to the first chunk after the drop (median of 30): {gaps[15] * 1e3:.2f} ms; "
          f"explicit resume_stream() of the same continuation on a new connection "
          f"{explicit[15] * 1e3:.2f} ms; fresh request to first bytes {firsts[15] * 1e3:.2f} ms;"
          f" normal gap between chunks {normal * 1e6:.1f} us", flush=True)


if __name__ == "__main__":
    proc, url = start_server(serve, N)
    asyncio.run(main(url))
    proc.terminate()

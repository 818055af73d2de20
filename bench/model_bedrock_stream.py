"""Bedrock ConverseStream: frame decoding beside botocore's parser, and whole streams beside boto3.

Two measures over the same body of N AWS event-stream frames, shaped like a real
ConverseStream (`messageStart`, text deltas with the `"p"` padding field Bedrock adds, a
tool block whose input arrives in 100 fragments, `messageStop`, `metadata`):

1. Sans-IO frame decoding (no JSON, no HTTP): `chronos.model._eventstream.EventStreamDecoder`
   beside `botocore.eventstream.EventStreamBuffer` (what boto3 runs), fed 64 KiB pieces (as
   network reads arrive) and one frame at a time. Best of 5; frames per second of CPU.
2. Whole streams over HTTP from a server in its own process: chronos `BedrockProvider`
   (SigV4-signed, frames decoded, JSON parsed, chunks and tool calls assembled) beside
   boto3's `converse_stream` loop (signed, decoded and parsed by botocore), and a raw httpx
   body read as the floor. Best of 5 streams per client over one client; CPU is this
   process's.

    .venv/bin/python bench/model_bedrock_stream.py [N]

N defaults to 20000. AWS credentials are fake and set here; nothing leaves 127.0.0.1.
"""

import asyncio
import os
import struct
import sys
import zlib

import httpx
import orjson
from _harness import abest_of, best_of, read_request, serve_forever, start_server

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
TOOL_FRAGMENTS = 100
FRAME = 65536
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

os.environ.update({"AWS_ACCESS_KEY_ID": "AKIDBENCHMARK", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})


def frame(event_type, data):
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        headers += (bytes([len(name)]) + name.encode() + b"\x07"
                    + struct.pack(">H", len(value)) + value.encode())
    payload = orjson.dumps(data)
    prelude = struct.pack(">II", 12 + len(headers) + len(payload) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def frames(n):
    out = [frame("messageStart", {"p": PADDING[:20], "role": "assistant"})]
    tail = TOOL_FRAGMENTS + 5  # text stop, tool start/stop, messageStop, metadata
    i = 0
    while len(out) < n - tail:
        out.append(frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
            "text": f"tok{i} "}, "p": PADDING[: i % 60]}))
        i += 1
    out.append(frame("contentBlockStop", {"contentBlockIndex": 0, "p": PADDING[:9]}))
    out.append(frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {
        "name": "f", "toolUseId": "tooluse_1"}}, "p": PADDING[:30]}))
    pieces = ['{"x": ['] + ['"ab", '] * (TOOL_FRAGMENTS - 2) + ['"z"]}']
    for piece in pieces:
        out.append(frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {
            "toolUse": {"input": piece}}, "p": PADDING[:12]}))
    out.append(frame("contentBlockStop", {"contentBlockIndex": 1, "p": PADDING[:5]}))
    out.append(frame("messageStop", {"p": PADDING[:7], "stopReason": "tool_use"}))
    out.append(frame("metadata", {"metrics": {"latencyMs": 100}, "p": PADDING[:3], "usage": {
        "inputTokens": 10, "outputTokens": n, "totalTokens": n + 10}}))
    assert len(out) == n, (len(out), n)
    return out


def row(name, count, seconds, cpu, unit="frames"):
    print(f"{name:44s} {count:7d} {unit} {count / seconds:12,.0f} {unit}/s "
          f"{cpu / count * 1e6:7.2f} us CPU/{unit[:-1]}", flush=True)


def decode_chronos(pieces):
    from chronos.model._eventstream import EventStreamDecoder

    decoder = EventStreamDecoder()
    count = 0
    for piece in pieces:
        count += len(decoder.feed(piece))
    decoder.flush()
    return count


def decode_botocore(pieces):
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    count = 0
    for piece in pieces:
        buffer.add_data(piece)
        for _ in buffer:
            count += 1
    return count


def sans_io(body_frames):
    data = b"".join(body_frames)
    feeds = {"64 KiB reads": [data[i : i + FRAME] for i in range(0, len(data), FRAME)],
             "one frame per read": body_frames}
    for feed, pieces in feeds.items():
        for name, decode in (("chronos EventStreamDecoder", decode_chronos),
                             ("botocore EventStreamBuffer", decode_botocore)):
            _, cpu, count = best_of(lambda decode=decode, pieces=pieces: decode(pieces))
            assert count == N, count
            row(f"{name} ({feed})", N, cpu, cpu)


def serve(port_q, n):
    data = b"".join(frames(n))
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(data[i : i + FRAME]), data[i : i + FRAME])
                       for i in range(0, len(data), FRAME)) + b"0\r\n\r\n"

    async def handle(reader, writer):
        while await read_request(reader) is not None:  # keep-alive: both clients reuse theirs
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream"
                         b"\r\ntransfer-encoding: chunked\r\n\r\n")
            try:
                for i in range(0, len(chunked), FRAME):
                    writer.write(chunked[i : i + FRAME])
                    await writer.drain()
            except ConnectionError:
                break
        writer.close()

    serve_forever(handle, port_q)


async def over_http_chronos(url):
    from chronos.model import ChatRequest, Message
    from chronos.model.bedrock import BedrockProvider

    provider = BedrockProvider("us.amazon.nova-micro-v1:0", base_url=url)
    req = ChatRequest(messages=[Message("user", "hi")])

    async def run():
        tool_calls = []
        async for chunk in provider.stream_chat(req):
            tool_calls.extend(chunk.tool_calls)
        assert len(orjson.loads(tool_calls[0].arguments)["x"]) == TOOL_FRAGMENTS - 1

    async with provider:
        wall, cpu, _ = await abest_of(run)
    row("chronos BedrockProvider.stream_chat", N, wall, cpu)


async def over_http_raw(url):
    async with httpx.AsyncClient(timeout=60) as client:

        async def run():
            async with client.stream("POST", url + "/model/m/converse-stream", json={}) as r:
                async for _ in r.aiter_raw():
                    pass

        wall, cpu, _ = await abest_of(run)
    row("raw httpx body read (no decoding)", N, wall, cpu)


def over_http_boto3(url):
    import boto3

    client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1")

    def run():
        response = client.converse_stream(
            modelId="us.amazon.nova-micro-v1:0",
            messages=[{"role": "user", "content": [{"text": "hi"}]}])
        return sum(1 for _ in response["stream"])

    wall, cpu, count = best_of(run)
    assert count == N, count
    row("boto3 converse_stream loop", N, wall, cpu)


if __name__ == "__main__":
    body_frames = frames(N)
    print(f"-- sans-IO frame decoding ({len(b''.join(body_frames)):,} bytes)", flush=True)
    sans_io(body_frames)
    proc, url = start_server(serve, N)
    print("-- whole streams over HTTP (frames = events)", flush=True)
    asyncio.run(over_http_raw(url))
    asyncio.run(over_http_chronos(url))
    over_http_boto3(url)
    proc.terminate()

"""What a client receives, and when, from llama.cpp's server and from Chronos, without the SDK.

    .venv/bin/python bench/ttft_wire.py --rounds 20

The same streamed chat request (the `dialect_openai.py ttft` prompt, greedy, 8 tokens) sent
over a raw socket (TCP_NODELAY, as the `openai` SDK's httpcore sets it) to llama.cpp's own
OpenAI-compatible server (xllamacpp) and to `chronos serve`'s `/v1/chat/completions` running
the same model in its process (the `in_process` graph of `bench/dialect_openai_graphs.py`);
rounds alternate the sides' order, each request once both processes are idle. A connection
the server closed is opened again before the clock starts (llama.cpp's server closes each
after a streamed response; the count is printed). Printed per side: each read up to the one
with the first text (ms after the request was sent, bytes, the bytes' start) for the first
rounds, the medians of the first read and of the first text, and the paired difference of
the first text's arrival, Chronos - llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dialect_openai import _GRAPHS, _load, _settle, local_model_server
from bench.dialect_openai_graphs import PROMPT, SEED
from tests.server.api_server import serving

_TEXT = re.compile(rb'"content":"[^"]')  # a delta with text (the role chunk's is null or "")
_SHOWN = 3  # rounds whose reads are printed


class _Side:
    """One server: a kept connection, opened again when the server has closed it."""

    def __init__(self, url: str, body: dict[str, object]) -> None:
        self.host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        self.port = int(port)
        data = json.dumps(body).encode()
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.host}:{port}\r\n"
                        f"Content-Type: application/json\r\nAccept: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode() + data
        self.sock = self._connect()
        self.reconnects = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def exchange(self) -> tuple[float, list[tuple[float, bytes]]]:
        """(ms from the request sent to the read with the first text, every read as (ms,
        bytes)), reading the response to its end."""
        start = time.perf_counter()
        self.sock.sendall(self.request)
        reads: list[tuple[float, bytes]] = []
        seen = b""
        first = 0.0
        while True:
            data = self.sock.recv(65536)
            at = (time.perf_counter() - start) * 1e3
            if not data:
                raise SystemExit(f"{self.host}:{self.port} closed the connection mid-response")
            reads.append((at, data))
            seen += data
            if not first and _TEXT.search(seen):
                first = at
            if b"[DONE]" in seen and seen.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                self._reopen_if_closed()
                return first, reads

    def _reopen_if_closed(self) -> None:
        """Open the connection again, before the next request's clock, if the server closes
        it after its response (a close arrives a moment after the response's end)."""
        if select.select([self.sock], [], [], 0.05)[0] and not self.sock.recv(1):
            self.sock.close()
            self.sock = self._connect()
            self.reconnects += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    model_server = local_model_server()
    model_url = model_server.listening_address
    os.environ["CHRONOS_BENCH_MODEL_URL"] = f"{model_url}/v1"
    messages = [{"role": "user", "content": PROMPT}]
    print(f"load before: {_load()}")
    with serving(f"{_GRAPHS}:in_process") as served:
        sides = {"llama.cpp server": _Side(model_url, {
                     "model": "smollm2", "messages": messages, "stream": True, "max_tokens": 8,
                     "temperature": 0.0, "seed": SEED}),
                 "chronos, model in process": _Side(served.url, {
                     "model": "in_process", "messages": messages, "stream": True})}
        pids = (os.getpid(), served.pid)  # this one holds the model's server
        for side in sides.values():  # warm-up
            side.exchange()
            side.exchange()
        results: dict[str, list[tuple[float, list[tuple[float, bytes]]]]] = {n: [] for n in sides}
        for i in range(args.rounds):
            for name in list(sides) if i % 2 == 0 else list(reversed(sides)):
                _settle(pids)
                results[name].append(sides[name].exchange())
    print(f"load after: {_load()}; {args.rounds} rounds")
    for name, rounds in results.items():
        print(f"{name}: first read {statistics.median(r[1][0][0] for r in rounds):.3f} ms, "
              f"first text {statistics.median(r[0] for r in rounds):.3f} ms (medians); reads up "
              f"to it {statistics.median(sum(at <= r[0] for at, _ in r[1]) for r in rounds)}; "
              f"connections opened again {sides[name].reconnects}")
        for first, reads in rounds[:_SHOWN]:
            for at, data in reads:
                if at > first:
                    break
                print(f"    {at:8.3f} ms {len(data):5d} B  {data[:90]!r}")
            print("    --")
    names = list(results)
    paired = [c[0] - d[0] for d, c in zip(results[names[0]], results[names[1]], strict=True)]
    q1, median, q3 = statistics.quantiles(paired, n=4)
    print(f"{names[1]} - {names[0]}, first text, paired: median {median:.3f} ms "
          f"(quartiles {q1:.3f} .. {q3:.3f})")


if __name__ == "__main__":
    main()

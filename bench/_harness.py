"""What the model-streaming benchmarks share: a stream server in a process of its own, and
the timing loop (the fastest of a few runs, with the CPU time this process spent in it).

    proc, url = start_server(serve, n)       # serve(port_queue, n) runs in the child
    wall, cpu, result = await abest_of(run)  # `run` an async callable; best_of for a plain one
"""

import asyncio
import multiprocessing
import time

REPS = 5


def start_server(serve, *args):
    """Run `serve(port_queue, *args)` in a daemon process; it puts its port on the queue.

    Returns the process (terminate it when done) and the server's base URL.
    """
    port_q = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(port_q, *args), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{port_q.get()}"


def serve_forever(handle, port_q):
    """Serve connections with `handle(reader, writer)` on a free port, put on `port_q`."""

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def read_request(reader):
    """The next request's head on a kept-alive connection, its body read and dropped; None
    once the client has gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return head


def best_of(run, reps=REPS):
    """(wall seconds, CPU seconds, result) of the fastest of `reps` calls of `run()`."""
    best = None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    return best


async def abest_of(run, reps=REPS):
    """`best_of` for an async `run`, awaited in turn."""
    best = None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        result = await run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu, result)
    return best


def assemble(provider, pieces):
    """chronos's own share of a stream, no HTTP: decode `pieces` (the body as read),
    translate each event and build each chunk, as `stream_chat` does."""
    from chronos.model._assemble import ChunkBuilder

    translator = provider._new_translator()
    decoder = translator.new_decoder("text/event-stream")
    out = ChunkBuilder()
    for piece in pieces:
        for event in decoder.feed(piece):
            translator.on_event(event, out)
            out.build()
    out.finish()

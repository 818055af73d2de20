"""A server process for the multi-process tests: SSE and a publish endpoint on a RedisBroker.

Run as `python tests/stream/redis_app.py PORT`, with `CHRONOS_BROKER_URL` and
`CHRONOS_TEST_PREFIX` set. `POST /publish/{topic}?start=S&count=N` publishes N events whose
data are S..S+N-1; `POST /run/{session}` runs a small graph whose events the runner
publishes to the broker (topic: the session id); `GET /events/{topic}` streams a topic as
Server-Sent Events. With `CHRONOS_TEST_TABLE` set too, `POST /review/{session}` runs a graph
that pauses at an interrupt node, checkpointed in that PostgreSQL table, and
`POST /review/{session}/resume` resumes it (from whichever process holds the checkpoint).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chronos import graph
from chronos.errors import RunConflictError
from chronos.graph import emit
from chronos.store import PostgresStore
from chronos.stream import Event, broker_from_url

broker = broker_from_url(
    os.environ["CHRONOS_BROKER_URL"], key_prefix=os.environ["CHRONOS_TEST_PREFIX"]
)


async def publish(request: Request) -> PlainTextResponse:
    start = int(request.query_params.get("start", "0"))
    count = int(request.query_params.get("count", "1"))
    for i in range(start, start + count):
        broker.publish(
            Event("token", {"i": i, "pid": os.getpid()}), topic=request.path_params["topic"]
        )
    return PlainTextResponse("ok")


async def write(state: dict[str, object]) -> dict[str, object]:
    for word in ("a", "robot", "story"):
        emit("token", word)
    return {"text": "a robot story", "pid": os.getpid()}


_story = graph.StateGraph("story")
_story.add_node("write", write).set_entry_point("write").set_finish_point("write")
runner = graph.Runner(_story.compile(), None, broker=broker)


async def run(request: Request) -> PlainTextResponse:
    result = await runner.run(request.path_params["session"], {"query": "hi"})
    return PlainTextResponse(str(result.status))


async def draft(state: dict[str, object]) -> dict[str, object]:
    for word in ("a", "draft"):
        emit("token", word)
    return {"text": "a draft", "drafted_by": os.getpid()}


async def approve(state: dict[str, object]) -> dict[str, object]:
    for word in ("approved", "and", "published"):
        emit("token", word)
    return {"published": state["text"] if state.get("approved") else "", "approved_by": os.getpid()}


_review = graph.StateGraph("review")
_review.add_node("draft", draft).add_interrupt_node("approve", approve)
_review.set_entry_point("draft").add_edge("draft", "approve").set_finish_point("approve")
_table = os.environ.get("CHRONOS_TEST_TABLE")
store = PostgresStore(os.environ["CHRONOS_TEST_POSTGRES"], table=_table) if _table else None
reviewer = graph.Runner(_review.compile(), store, broker=broker)


async def review(request: Request) -> PlainTextResponse:
    result = await reviewer.run(request.path_params["session"], {"query": "hi"})
    return PlainTextResponse(str(result.status))


async def resume(request: Request) -> PlainTextResponse:
    try:
        result = await reviewer.resume(request.path_params["session"], {"approved": True})
    except RunConflictError:
        return PlainTextResponse("conflict", status_code=409)
    return PlainTextResponse(str(result.status))


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await broker.aclose()  # ends every stream, so uvicorn can stop at once
    if store is not None:
        await store.aclose()


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/publish/{topic}", publish, methods=["POST"]),
        Route("/run/{session}", run, methods=["POST"]),
        Route("/review/{session}", review, methods=["POST"]),
        Route("/review/{session}/resume", resume, methods=["POST"]),
        Route("/events/{topic}", broker.sse_handler()),
    ],
    lifespan=lifespan,
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

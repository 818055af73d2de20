"""Scripted client sessions against a LangGraph Agent Server API, driven by the official SDK.

Each scenario takes the server's URL, talks to it through `langgraph-sdk` (the async client,
and the sync one where it says so) exactly as an application would, and returns a `Trace`:
the sequence of `(event, data)` the SDK yielded or the statuses it saw, with what differs
from run to run (ids, timestamps, URLs) replaced by placeholders (`normalise`). The
conformance test runs every scenario on the reference server (`langgraph dev`) and on
`chronos serve` and asserts that the traces are equal.

Two parts of the protocol carry LangGraph's internals rather than the user's data, and are
compared on the fields the SDK clients and `useStream` read (`_project`): messages (in
`messages-tuple` the chunk's type, content and id and the metadata's `langgraph_node`; in
`messages` mode the same of each message and of `messages/metadata`) and `debug` events
(type, step, task name, checkpoint values and next nodes). `events` mode is compared on
`(event, name)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError
from langgraph_sdk.schema import StreamPart

__all__ = ["GRAPH_ID", "SCENARIOS", "Trace", "normalise", "tokens_from_a_model_over_http"]

GRAPH_ID = "agent"
Trace = list[tuple[str, Any]]
Scenario = Callable[[str], Awaitable[Trace]]

# Seconds between two tokens in the runs that must last long enough to be cancelled,
# interrupted or joined while they run: 200 tokens, so about 4 s.
_SLOW = 0.02
_VOLATILE_KEYS = frozenset({
    "run_id", "thread_id", "assistant_id", "checkpoint_id", "parent_checkpoint_id", "id",
    "created_at", "updated_at", "state_updated_at", "timestamp", "langgraph_api_url",
    "langgraph_request_id", "checkpoint_ns", "langgraph_checkpoint_ns", "task_id",
})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalise(value: Any) -> Any:
    """`value` with ids, timestamps and URLs replaced by `"<volatile>"` (None stays None)."""
    if isinstance(value, dict):
        return {
            key: ("<volatile>" if key in _VOLATILE_KEYS and item is not None else normalise(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return _UUID.sub("<uuid>", value)
    return value


def _message(message: dict[str, Any]) -> dict[str, Any]:
    return {key: message.get(key) for key in ("type", "content", "id")}


def _project(event: str, data: Any) -> Any:
    if event == "messages/metadata" and isinstance(data, dict):
        return [{"langgraph_node": entry["metadata"].get("langgraph_node")}
                for entry in data.values()]
    if event in ("messages/partial", "messages/complete") and isinstance(data, list):
        return [_message(message) for message in data]
    if event == "messages" and isinstance(data, list) and len(data) == 2:
        chunk, metadata = data
        return [_message(chunk), {"langgraph_node": metadata.get("langgraph_node")}]
    if event.startswith("debug") and isinstance(data, dict):
        payload = data.get("payload") or {}
        if data.get("type") == "checkpoint":
            kept = {"values": payload.get("values"), "next": payload.get("next")}
        else:
            kept = {"name": payload.get("name")}
        return {"type": data.get("type"), "step": data.get("step"), "payload": kept}
    if event.startswith("events") and isinstance(data, dict):
        return {"event": data.get("event"), "name": data.get("name")}
    return data


def _is_stream_end_marker(event: str, data: Any) -> bool:
    # langchain-core >= 1 closes every streamed message with an empty chunk marked
    # `chunk_position: "last"`: an artefact of its chunk merging that carries no content.
    return (
        event.startswith("messages")
        and isinstance(data, list)
        and isinstance(data[0], dict)
        and data[0].get("chunk_position") == "last"
        and not data[0].get("content")
    )


def _trace_part(part: StreamPart) -> tuple[str, Any] | None:
    if _is_stream_end_marker(part.event, part.data):
        return None
    return (part.event, normalise(_project(part.event, part.data)))


def _trace(parts: Sequence[StreamPart]) -> Trace:
    return [entry for part in parts if (entry := _trace_part(part)) is not None]


def _error(exc: APIStatusError) -> tuple[str, Any]:
    body = exc.body if isinstance(exc.body, dict) else {}
    return ("error", {"status": exc.status_code, "keys": sorted(body)})


async def _thread(client: LangGraphClient) -> str:
    thread_id: str = (await client.threads.create())["thread_id"]
    return thread_id


async def _stream(url: str, stream_mode: str | list[str], **kwargs: Any) -> Trace:
    client = get_client(url=url)
    thread_id = await _thread(client)
    parts: list[StreamPart] = []
    try:
        async for part in client.runs.stream(
            thread_id, GRAPH_ID, input={"topic": "t"}, stream_mode=stream_mode, **kwargs
        ):
            parts.append(part)
    except APIStatusError as exc:  # a refused stream is an outcome to compare too
        return [*_trace(parts), _error(exc)]
    return _trace(parts)


# One scenario per stream mode, and one with several: a run streamed in that mode.
_STREAM_MODES: dict[str, str | list[str]] = {
    "stream_values": "values",
    "stream_updates": "updates",
    "stream_custom": "custom",
    "stream_messages_tuple": "messages-tuple",
    "stream_messages": "messages",
    "stream_events": "events",
    "stream_debug": "debug",
    "stream_several_modes": ["values", "updates", "custom", "messages-tuple"],
}


async def stateless_run(url: str) -> Trace:
    client = get_client(url=url)
    parts = [
        part async for part in client.runs.stream(
            None, GRAPH_ID, input={"topic": "t"}, stream_mode=["updates", "custom"]
        )
    ]
    return _trace(parts)


async def sync_client_stream_and_wait(url: str) -> Trace:
    """The sync client, in a worker thread: a stream, then `runs.wait` on the same thread."""

    def session() -> Trace:
        client = get_sync_client(url=url)
        thread_id: str = client.threads.create()["thread_id"]
        parts = list(client.runs.stream(
            thread_id, GRAPH_ID, input={"topic": "s"}, stream_mode="updates"
        ))
        final = client.runs.wait(thread_id, GRAPH_ID, input={"topic": "u"})
        return [*_trace(parts), ("wait", normalise(final))]

    return await asyncio.to_thread(session)


async def interrupt_and_resume(url: str) -> Trace:
    """`interrupt(payload)` in a node: the payload in updates and in the thread's state, then
    `Command(resume=...)` finishes the run with the answer."""
    client = get_client(url=url)
    thread_id = await _thread(client)
    first = [
        part async for part in client.runs.stream(
            thread_id, GRAPH_ID, input={"topic": "i", "ask_review": True}, stream_mode="updates"
        )
    ]
    state = await client.threads.get_state(thread_id)
    resumed = [
        part async for part in client.runs.stream(
            thread_id, GRAPH_ID, command={"resume": "approved"}, stream_mode="updates"
        )
    ]
    after = await client.threads.get_state(thread_id)
    paused = {
        "next": state["next"],
        "tasks": [
            {"name": task["name"], "interrupts": normalise(task["interrupts"])}
            for task in state["tasks"]
        ],
        "interrupts": normalise(state.get("interrupts")),
    }
    return [
        *_trace(first), ("state", paused), *_trace(resumed),
        ("state", {"next": after["next"], "verdict": after["values"].get("verdict")}),
    ]


async def _wait_until_running(client: LangGraphClient, thread_id: str, run_id: str) -> None:
    for _ in range(500):
        if (await client.runs.get(thread_id, run_id))["status"] == "running":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never started")


async def _final_status(client: LangGraphClient, thread_id: str, run_id: str) -> str:
    # Joining a rolled-back (deleted) run: the reference answers 200 with an `__error__`
    # body, Chronos 404; either way the run's status below says what happened.
    with contextlib.suppress(httpx.HTTPStatusError):
        await client.runs.join(thread_id, run_id)
    try:
        status: str = (await client.runs.get(thread_id, run_id))["status"]
    except APIStatusError as exc:
        return f"gone ({exc.status_code})"
    return status


async def background_run_joined_by_second_client(url: str) -> Trace:
    """One client starts a background run; another joins its stream from the first event
    (`Last-Event-ID: -1`, as `useStream` does when it reconnects) while it runs."""
    starter, joiner = get_client(url=url), get_client(url=url)
    thread_id = await _thread(starter)
    run = await starter.runs.create(
        thread_id, GRAPH_ID, input={"topic": "b", "token_delay": _SLOW / 4},
        stream_mode=["values", "custom"], stream_resumable=True,
    )
    parts = [
        part async for part in joiner.runs.join_stream(thread_id, run["run_id"], last_event_id="-1")
    ]
    return [("created", run["status"]), *_trace(parts),
            ("final", await _final_status(starter, thread_id, run["run_id"]))]


async def reconnect_with_last_event_id(url: str) -> Trace:
    """A stream dropped after three events, resumed with the third event's id: nothing is
    lost and nothing repeats."""
    client = get_client(url=url)
    thread_id = await _thread(client)
    first: list[StreamPart] = []
    async for part in client.runs.stream(
        thread_id, GRAPH_ID, input={"topic": "r", "token_delay": _SLOW / 4},
        stream_mode=["values", "custom"], stream_resumable=True, on_disconnect="continue",
    ):
        first.append(part)
        if len(first) == 3:
            break
    run_id = first[0].data["run_id"]
    last_id = first[-1].id
    assert last_id is not None, "a resumable stream gives every event an id"
    rest = [
        part async for part in client.runs.join_stream(thread_id, run_id, last_event_id=last_id)
    ]
    return [*_trace(first), ("reconnected", None), *_trace(rest)]


async def cancel_running_run(url: str) -> Trace:
    client = get_client(url=url)
    trace: Trace = []
    for action in ("interrupt", "rollback"):
        thread_id = await _thread(client)
        run = await client.runs.create(
            thread_id, GRAPH_ID, input={"topic": "c", "token_delay": _SLOW}
        )
        await _wait_until_running(client, thread_id, run["run_id"])
        await client.runs.cancel(thread_id, run["run_id"], wait=True, action=action)
        trace.append((action, await _final_status(client, thread_id, run["run_id"])))
    return trace


async def _multitask(url: str, strategy: str) -> Trace:
    client = get_client(url=url)
    thread_id = await _thread(client)
    first = await client.runs.create(
        thread_id, GRAPH_ID, input={"topic": "m", "token_delay": _SLOW}
    )
    await _wait_until_running(client, thread_id, first["run_id"])
    try:
        second = await client.runs.create(
            thread_id, GRAPH_ID, input={"topic": "n"}, multitask_strategy=strategy
        )
    except APIStatusError as exc:
        return [_error(exc), ("first", await _final_status(client, thread_id, first["run_id"]))]
    second_status = await _final_status(client, thread_id, second["run_id"])
    first_status = await _final_status(client, thread_id, first["run_id"])
    values = (await client.threads.get_state(thread_id))["values"]
    # How much of an interrupted run's work stays depends on when it was interrupted.
    steps = None if strategy == "interrupt" else values.get("steps")
    return [("first", first_status), ("second", second_status),
            ("steps", steps), ("topic", values.get("topic"))]


async def multitask_reject(url: str) -> Trace:
    return await _multitask(url, "reject")


async def multitask_interrupt(url: str) -> Trace:
    return await _multitask(url, "interrupt")


async def multitask_rollback(url: str) -> Trace:
    return await _multitask(url, "rollback")


async def multitask_enqueue(url: str) -> Trace:
    return await _multitask(url, "enqueue")


async def disconnect_cancels_run(url: str) -> Trace:
    """`on_disconnect="cancel"`: the client leaves after the first custom event, the run
    stops."""
    client = get_client(url=url)
    thread_id = await _thread(client)
    run_id = ""
    async for part in client.runs.stream(
        thread_id, GRAPH_ID, input={"topic": "d", "token_delay": _SLOW},
        stream_mode=["custom"], on_disconnect="cancel",
    ):
        if part.event == "metadata":
            run_id = part.data["run_id"]
        if part.event == "custom":
            break
    for _ in range(500):
        status = (await client.runs.get(thread_id, run_id))["status"]
        if status not in ("pending", "running"):
            return [("status", status)]
        await asyncio.sleep(0.01)
    return [("status", "still running")]


async def bad_input(url: str) -> Trace:
    """Unknown ids answer 404, an invalid body 422, each in the API's error shape."""
    client = get_client(url=url)
    missing = "00000000-0000-0000-0000-000000000000"
    thread_id = await _thread(client)
    attempts: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("unknown thread", lambda: client.threads.get(missing)),
        ("unknown assistant", lambda: client.assistants.get(missing)),
        ("unknown run", lambda: client.runs.get(thread_id, missing)),
        ("run on unknown thread", lambda: client.runs.create(missing, GRAPH_ID, input={})),
        ("invalid stream mode", lambda: client.runs.create(
            thread_id, GRAPH_ID, input={}, stream_mode="no-such-mode")),  # type: ignore[arg-type]
    ]
    trace: Trace = []
    for name, attempt in attempts:
        try:
            await attempt()
        except APIStatusError as exc:
            trace.append((name, _error(exc)))
        else:
            trace.append((name, "accepted"))
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(f"/threads/{thread_id}/runs", json={"assistant_id": 5})
        trace.append(("assistant_id not a string", {"status": response.status_code}))
    return trace


async def limits(url: str) -> Trace:
    """An 11 MB body and a malformed `Last-Event-ID` are refused, and the thread they named
    still runs normally afterwards (nothing lost, nothing left busy)."""
    client = get_client(url=url)
    thread_id = await _thread(client)
    done = await client.runs.create(thread_id, GRAPH_ID, input={"topic": "l"})
    await client.runs.join(thread_id, done["run_id"])
    oversized = (b'{"assistant_id": "agent", "input": {"topic": "l"}, "metadata": {"pad": "'
                 + b"x" * (11 << 20) + b'"}}')
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        big = await http.post(
            "/runs/wait", content=oversized,
            headers={"content-type": "application/json"},
        )
        bad_id = await http.get(
            f"/threads/{thread_id}/runs/{done['run_id']}/stream",
            headers={"Last-Event-ID": "not an id"},
        )
    final = await client.runs.wait(thread_id, GRAPH_ID, input={"topic": "m"})
    return [("11 MB body", big.status_code), ("malformed Last-Event-ID", bad_id.status_code),
            ("then a run", normalise(final))]


def tokens_from_a_model_over_http(model_url: str) -> Scenario:
    """The scenario where `write` streams from an OpenAI-compatible server at `model_url`
    (the replay server, replaying `openai_stream_body()`), in `messages-tuple` and `updates`."""

    async def scenario(url: str) -> Trace:
        client = get_client(url=url)
        thread_id = await _thread(client)
        parts = [
            part async for part in client.runs.stream(
                thread_id, GRAPH_ID, input={"topic": "h", "model_url": model_url},
                stream_mode=["messages-tuple", "updates"],
            )
        ]
        return _trace(parts)

    return scenario


SCENARIOS: dict[str, Scenario] = {
    **{name: functools.partial(_stream, stream_mode=mode) for name, mode in _STREAM_MODES.items()},
    **{scenario.__name__: scenario for scenario in (
        stateless_run, sync_client_stream_and_wait, interrupt_and_resume,
        background_run_joined_by_second_client, reconnect_with_last_event_id,
        cancel_running_run, multitask_reject, multitask_interrupt, multitask_rollback,
        multitask_enqueue, disconnect_cancels_run, bad_input, limits,
    )},
}

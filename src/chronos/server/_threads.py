"""Threads: a conversation's records, its state from the checkpoint store, and their routes.

A thread is a chronos session: its id is the session id under which the runner checkpoints
and publishes. The records (metadata, times) live in this process.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chronos.errors import CheckpointNotFound, RequestRefused
from chronos.graph import (
    CompiledGraph,
    Send,
    apply_updates,
    interrupts_in,
    next_nodes,
    node_ids,
)
from chronos.server._assistants import Assistants
from chronos.server._body import read_json_object
from chronos.server._fields import choice, optional_mapping, string_list
from chronos.server._fields import field as body_field
from chronos.server._records import Records
from chronos.server._response import JSONResponse
from chronos.server._state import checkpoint_ref, iso, thread_state
from chronos.store import Checkpoint, CheckpointStatus, CheckpointStore

__all__ = ["Action", "Authorize", "ThreadRecord", "Threads", "thread_routes"]

Authorize = Callable[[Request, "ThreadRecord", "Action"], "bool | Awaitable[bool]"]
"""`authorize(request, thread, action)`: may this request do `action` on `thread`?

Called on every route that touches a thread, streams and joins included, and for each
thread a search would return; a stateless run asks `create` for its temporary thread.
Return False to refuse: a thread the request may not `read` answers 404 like an unknown one.
"""

_THREADS: Final = "threads"  # the collection of thread records

THREAD_STATUSES: Final = ("idle", "busy", "interrupted", "error")


Action = Literal["create", "read", "update", "delete", "run", "cancel"]
"""What a request does to a thread: `read` covers state, history, runs, streams and joins;
`run` starts runs; `cancel` cancels or deletes them; `update` changes metadata or state."""


@dataclass
class ThreadRecord:
    """A thread as `authorize` sees it: its id and metadata (which it may tag on `create`)."""

    thread_id: str
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    active_run: str | None = None  # the run executing on it now, if any
    temporary: bool = False  # a stateless run's thread, deleted when the run ends

    def to_json(self) -> dict[str, Any]:
        # Shallow, for `Records.put`, which serialises at once: `dataclasses.asdict`'s deep
        # copy was a fifth of the time a run takes to start.
        return {"thread_id": self.thread_id, "created_at": self.created_at,
                "updated_at": self.updated_at, "metadata": self.metadata,
                "active_run": self.active_run, "temporary": self.temporary}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ThreadRecord:
        return cls(**value)


class Threads:
    """The threads the server knows (in its `Records`), and reads of their state."""

    def __init__(self, store: CheckpointStore, assistants: Assistants, records: Records,
                 authorize: Authorize | None = None) -> None:
        self.store = store
        self.assistants = assistants
        self.records = records
        self.authorize = authorize

    async def create(self, request: Request, thread_id: str | None = None,
                     metadata: Mapping[str, Any] | None = None, *,
                     temporary: bool = False) -> ThreadRecord:
        """A new thread, once `authorize` has allowed it (and perhaps tagged its metadata).

        Raises:
            RequestRefused: 403, `authorize` refused.
        """
        record = await self.new(request, thread_id, metadata, temporary=temporary)
        await self.save(record)
        return record

    async def new(self, request: Request, thread_id: str | None = None,
                  metadata: Mapping[str, Any] | None = None, *,
                  temporary: bool = False) -> ThreadRecord:
        """`create` without saving the record: for a thread whose id no one is told, which
        only needs saving if it outlives its run (`Runs.start`'s `unseen`).

        Raises:
            RequestRefused: 403, `authorize` refused.
        """
        now = time.time()
        record = ThreadRecord(thread_id or str(uuid.uuid4()), now, now, dict(metadata or {}),
                              temporary=temporary)
        if not await self.allows(request, record, "create"):
            raise RequestRefused(403, "Not allowed to create a thread")
        return record

    async def find(self, thread_id: str) -> ThreadRecord | None:
        """The thread's record, without asking `authorize` (for the server's own use)."""
        value = await self.records.get(_THREADS, thread_id)
        return None if value is None else ThreadRecord.from_json(value)

    async def save(self, record: ThreadRecord) -> None:
        await self.records.put(_THREADS, record.thread_id, record.to_json())

    async def remove(self, thread_id: str) -> None:
        await self.records.delete(_THREADS, thread_id)

    async def all(self) -> list[ThreadRecord]:
        return [ThreadRecord.from_json(v) for v in await self.records.values(_THREADS)]

    async def set_active(self, thread_id: str, run_id: str | None, *,
                         unless: str | None = None) -> None:
        """Mark the run executing on a thread (None: none), reading the record afresh."""
        record = await self.find(thread_id)
        if record is None or (unless is not None and record.active_run != unless):
            return
        record.active_run = run_id
        record.updated_at = time.time()
        await self.save(record)

    async def get(self, request: Request, thread_id: str, action: Action = "read"
                  ) -> ThreadRecord:
        """The thread, if it exists and `authorize` lets this request do `action` on it.

        Raises:
            RequestRefused: 404, no such thread or one this request may not even read (so that no
                one learns which ids exist); 403, one it may read but not act on so.
        """
        record = await self.find(thread_id)
        if record is None or not await self.allows(request, record, "read"):
            raise RequestRefused(404, f"Thread with ID {thread_id} not found")
        if action != "read" and not await self.allows(request, record, action):
            raise RequestRefused(403, f"Not allowed to {action} thread {thread_id}")
        return record

    async def allows(self, request: Request, record: ThreadRecord, action: Action) -> bool:
        if self.authorize is None:
            return True
        verdict = self.authorize(request, record, action)
        return bool(await verdict if inspect.isawaitable(verdict) else verdict)

    @staticmethod
    def status(record: ThreadRecord, latest: Checkpoint | None) -> str:
        if record.active_run is not None:
            return "busy"
        if latest is None:
            return "idle"
        return {"paused": "interrupted", "failed": "error"}.get(latest.status, "idle")

    async def describe(self, record: ThreadRecord, *, new: bool = False) -> dict[str, Any]:
        """The thread as the API returns it; `new`: one whose id this server just made, which
        has no checkpoints to read (a store round trip, on every run's path through the SDK's
        `threads.create`)."""
        latest = None if new else await self.store.latest(record.thread_id)
        tasks = thread_state(record.thread_id, latest)["tasks"]
        return {
            "thread_id": record.thread_id, "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at), "metadata": record.metadata,
            "status": self.status(record, latest),
            "values": dict(latest.state) if latest is not None else None,
            "interrupts": {t["id"]: t["interrupts"] for t in tasks if t["interrupts"]},
        }

    def graph_of(self, record: ThreadRecord) -> CompiledGraph:
        """The graph the thread's runs use (the only one served, if it has had none).

        Raises:
            RequestRefused: 400, the thread has no graph yet and several are served.
        """
        graph_id = record.metadata.get("graph_id")
        served = self.assistants.served
        if isinstance(graph_id, str) and graph_id in served:
            return served[graph_id].graph
        if len(served) == 1:
            return next(iter(served.values())).graph
        raise RequestRefused(400, f"Thread {record.thread_id} has no graph yet; run it first")

    async def checkpoint(self, thread_id: str, checkpoint_id: str) -> Checkpoint:
        try:
            checkpoint = await self.store.get(checkpoint_id)
        except CheckpointNotFound as exc:
            raise RequestRefused(404, f"Checkpoint {checkpoint_id} not found") from exc
        if checkpoint.session_id != thread_id:
            raise RequestRefused(404, f"Checkpoint {checkpoint_id} not found")
        return checkpoint

    async def update_state(self, record: ThreadRecord, values: Mapping[str, Any],
                           as_node: str | None, base: Checkpoint | None) -> Checkpoint:
        """Write a checkpoint with `values` applied as if `as_node` had returned them."""
        graph = self.graph_of(record)
        if as_node is not None and as_node not in graph.nodes:
            raise RequestRefused(422, f"field 'as_node' names unknown node {as_node!r}")
        state = apply_updates(graph, base.state if base is not None else {}, [values])
        step = next_nodes(graph, state, (as_node,)) if as_node is not None else ()
        nxt = node_ids(step) if as_node is not None else base.next if base is not None else ()
        sends = tuple((t.node, t.arg) for t in step if isinstance(t, Send))
        status: CheckpointStatus = "completed"
        if nxt or sends:
            status = "paused" if interrupts_in(graph, nxt) else "running"
        checkpoint = Checkpoint(
            id=uuid.uuid4().hex, session_id=record.thread_id, run_id=f"update-{uuid.uuid4().hex}",
            graph_id=graph.id, step=base.step + 1 if base is not None else 0, status=status,
            ran=(as_node,) if as_node else (), next=nxt, state=state,
            parent_id=base.id if base is not None else None, created_at=time.time(),
            sends=sends,
        )
        await self.store.put(checkpoint)
        record.updated_at = time.time()
        await self.save(record)
        return checkpoint


def _checkpoint_id(body: Mapping[str, Any]) -> str | None:
    given = body_field(body, "checkpoint_id", str, "")
    nested = optional_mapping(body, "checkpoint").get("checkpoint_id")
    return given or (nested if isinstance(nested, str) else None)


def thread_routes(threads: Threads,
                  delete_thread: Callable[[str], Awaitable[None]]) -> list[Route]:
    """The `/threads` routes; `delete_thread(thread_id)` cancels and forgets a thread's runs,
    then the thread."""

    async def create(request: Request) -> Response:
        body = await read_json_object(request)
        thread_id = body_field(body, "thread_id", str, "") or None
        metadata = optional_mapping(body, "metadata")
        if_exists = choice(body, "if_exists", ("raise", "do_nothing"), "raise")
        if thread_id is not None and await threads.find(thread_id) is not None:
            if if_exists == "raise":
                raise RequestRefused(409, f"Thread with ID {thread_id} already exists")
            return JSONResponse(await threads.describe(
                await threads.get(request, thread_id)))
        record = await threads.create(request, thread_id, metadata)
        return JSONResponse(await threads.describe(record, new=thread_id is None))

    async def get(request: Request) -> Response:
        return JSONResponse(await threads.describe(
            await threads.get(request, request.path_params["thread_id"])))

    async def patch(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"], "update")
        body = await read_json_object(request)
        record.metadata.update(optional_mapping(body, "metadata"))
        record.updated_at = time.time()
        await threads.save(record)
        return JSONResponse(await threads.describe(record))

    async def delete(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"], "delete")
        await delete_thread(record.thread_id)
        return Response(status_code=204)

    async def search(request: Request) -> Response:
        body = await read_json_object(request)
        metadata = optional_mapping(body, "metadata")
        ids = set(string_list(body, "ids"))
        status = body_field(body, "status", str, "")
        if status and status not in THREAD_STATUSES:
            raise RequestRefused(422, f"field 'status' must be one of {list(THREAD_STATUSES)}")
        limit = body_field(body, "limit", int, 10)
        offset = body_field(body, "offset", int, 0)
        found = []
        for record in sorted(await threads.all(), key=lambda r: -r.created_at):
            if record.temporary or (ids and record.thread_id not in ids):
                continue
            if not await threads.allows(request, record, "read"):
                continue
            if any(record.metadata.get(k) != v for k, v in metadata.items()):
                continue
            described = await threads.describe(record)
            if not status or described["status"] == status:
                found.append(described)
        return JSONResponse(found[offset:offset + limit])

    async def get_state(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"])
        checkpoint_id = request.path_params.get("checkpoint_id")
        checkpoint = (await threads.checkpoint(record.thread_id, checkpoint_id) if checkpoint_id
                      else await threads.store.latest(record.thread_id))
        return JSONResponse(thread_state(record.thread_id, checkpoint))

    async def get_state_at(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"])
        checkpoint_id = _checkpoint_id(await read_json_object(request))
        if checkpoint_id is None:
            raise RequestRefused(422, "field 'checkpoint' must name a checkpoint_id")
        checkpoint = await threads.checkpoint(record.thread_id, checkpoint_id)
        return JSONResponse(thread_state(record.thread_id, checkpoint))

    async def update_state(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"], "update")
        body = await read_json_object(request)
        values = body.get("values")
        if values is not None and not isinstance(values, dict):
            raise RequestRefused(422, "field 'values' must be an object")
        as_node = body_field(body, "as_node", str, "") or None
        if record.active_run is not None:
            raise RequestRefused(409, f"Thread {record.thread_id} is busy with a run")
        checkpoint_id = _checkpoint_id(body)
        base = (await threads.checkpoint(record.thread_id, checkpoint_id) if checkpoint_id
                else await threads.store.latest(record.thread_id))
        written = await threads.update_state(record, values or {}, as_node, base)
        return JSONResponse({"checkpoint": checkpoint_ref(record.thread_id, written.id)})

    async def history(request: Request) -> Response:
        record = await threads.get(request, request.path_params["thread_id"])
        body = await read_json_object(request) if request.method == "POST" else {}
        limit = body_field(body, "limit", int, 10)
        if request.method == "GET" and request.query_params.get("limit", "").isdigit():
            limit = int(request.query_params["limit"])
        before = _before(body)
        checkpoints = list(reversed(await threads.store.history(record.thread_id)))
        if before is not None:
            ids = [c.id for c in checkpoints]
            checkpoints = checkpoints[ids.index(before) + 1:] if before in ids else []
        return JSONResponse([thread_state(record.thread_id, c) for c in checkpoints[:limit]])

    return [
        Route("/threads", create, methods=["POST"]),
        Route("/threads/search", search, methods=["POST"]),
        Route("/threads/{thread_id}", get, methods=["GET"]),
        Route("/threads/{thread_id}", patch, methods=["PATCH"]),
        Route("/threads/{thread_id}", delete, methods=["DELETE"]),
        Route("/threads/{thread_id}/state", get_state, methods=["GET"]),
        Route("/threads/{thread_id}/state", update_state, methods=["POST"]),
        Route("/threads/{thread_id}/state/checkpoint", get_state_at, methods=["POST"]),
        Route("/threads/{thread_id}/state/{checkpoint_id}", get_state, methods=["GET"]),
        Route("/threads/{thread_id}/history", history, methods=["GET", "POST"]),
    ]


def _before(body: Mapping[str, Any]) -> str | None:
    before = body.get("before")
    if isinstance(before, str):
        return before
    if isinstance(before, dict) and isinstance(before.get("checkpoint_id"), str):
        return str(before["checkpoint_id"])
    if before is not None:
        raise RequestRefused(422, "field 'before' must be a checkpoint id or a checkpoint")
    return None

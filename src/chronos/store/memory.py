"""`MemoryStore`: checkpoints in a dict, for tests and runs that need not outlive the process."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from chronos.errors import CheckpointNotFound, StoreError
from chronos.store._lease import SessionClaims
from chronos.store._protocol import (
    Checkpoint,
    SessionInfo,
    decode_position,
    decode_state,
    encode_pending,
    encode_position,
    encode_state,
    has_position,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keep checkpoints in memory.

    ```python
    runner = graph.Runner(compiled, store.MemoryStore())
    ```

    State is stored encoded, exactly as the durable stores keep it, so a value that could not
    be stored there fails here too, and later changes to the run's objects do not leak in.
    `lease` keeps two runners sharing the store from executing one session at once.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = {}
        # In the order of each session's latest write: a put moves its session to the end.
        self._by_session: dict[str, list[str]] = {}
        self._claims = SessionClaims()

    async def put(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint."""
        c = checkpoint
        # Only a checkpoint that needs more than `next` pays for encoding its position.
        position = encode_position(c) if has_position(c) else None
        data = encode_state(c.state), encode_pending(c.pending), position
        if checkpoint.id in self._by_id:
            raise StoreError(f"checkpoint id {checkpoint.id!r} exists already")
        # Every field but the state (and the position), which are kept encoded.
        self._by_id[c.id] = (
            (c.id, c.session_id, c.run_id, c.graph_id, c.step, c.status, c.ran, c.next),
            (c.parent_id, c.created_at, c.error),
            data,
        )
        ids = self._by_session.pop(checkpoint.session_id, [])
        ids.append(checkpoint.id)
        self._by_session[checkpoint.session_id] = ids

    async def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with this id; `CheckpointNotFound` if there is none."""
        try:
            return self._load(checkpoint_id)
        except KeyError:
            raise CheckpointNotFound(checkpoint_id=checkpoint_id) from None

    async def latest(self, session_id: str) -> Checkpoint | None:
        """The session's most recent checkpoint, or None."""
        ids = self._by_session.get(session_id)
        return self._load(ids[-1]) if ids else None

    async def history(self, session_id: str, *, limit: int | None = None) -> list[Checkpoint]:
        """The session's checkpoints, oldest first (the last `limit` of them)."""
        ids = self._by_session.get(session_id, [])
        if limit is not None:
            ids = ids[-limit:] if limit > 0 else []
        return [self._load(i) for i in ids]

    async def sessions(self, *, limit: int | None = None) -> list[SessionInfo]:
        """Every session, the most recently written first (the first `limit` of them)."""
        newest_first = list(reversed(self._by_session.items()))
        if limit is not None:
            newest_first = newest_first[: max(limit, 0)]
        return [self._session(session_id, ids) for session_id, ids in newest_first]

    def lease(self, session_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the session while the block runs; `RunConflictError` at once if it is held."""
        return self._claims.lease(session_id)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _session(self, session_id: str, ids: list[str]) -> SessionInfo:
        head, (_, updated_at, _), (_, _, position) = self._by_id[ids[-1]]
        id, _, _, graph_id, _, status, ran, nxt = head
        return SessionInfo(
            session_id=session_id, graph_id=graph_id, status=status, ran=ran, next=nxt,
            checkpoints=len(ids), started_at=min(self._by_id[i][1][1] for i in ids),
            updated_at=updated_at, latest_id=id,
            metadata=decode_position(position)["metadata"] if position is not None else {},
        )

    def _load(self, checkpoint_id: str) -> Checkpoint:
        head, tail, (data, pending, position) = self._by_id[checkpoint_id]
        id, session_id, run_id, graph_id, step, status, ran, nxt = head
        parent_id, created_at, error = tail
        return Checkpoint(
            id=id, session_id=session_id, run_id=run_id, graph_id=graph_id, step=step,
            status=status, ran=ran, state=decode_state(data), parent_id=parent_id,
            created_at=created_at, error=error, pending=decode_state(pending),
            **(decode_position(position) if position is not None else {"next": nxt}),
        )

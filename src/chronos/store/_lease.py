"""Session leases for the stores without a server to hold them: memory and SQLite.

A lease is claimed in one step that cannot be interleaved with another claim: a check and an
add under a lock within the process, and across processes, on Linux, a lock on one byte of a
file all processes share (`RangeLeases`), elsewhere an exclusive, non-blocking `flock` on a
file of the session's own (`file_lease`). Both die with their process, as described here for
`flock`. The kernel drops a `flock` when the last descriptor of its
file closes, so a process killed with SIGKILL gives its sessions back at once: the next
runner takes them over without waiting out a timeout. (PostgreSQL's advisory locks behave
the same way, for the same reason, in `postgres.py`.)

A lock file is deleted by its holder on release, while still locked; a claimer that opened
the file before the deletion then holds a lock on a file nobody else can find, which it
notices (the path no longer names the inode it locked) and tries again on the new file.

A child made with `os.fork()` (without exec) shares its parent's lock descriptors, so a
lease outlives its holder while such a child lives; `subprocess` closes them in the child.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Final

from chronos.errors import RunConflictError, StoreError

if sys.platform != "win32":
    import fcntl

__all__ = ["RangeLeases", "SessionClaims", "file_lease", "lease_file_name"]

_CLAIM_ATTEMPTS: Final = 8  # each lost only to a holder deleting its file meanwhile
# Linux's open file description locks; None where fcntl lacks them (macOS, Windows).
_OFD_SETLK: Final[int | None] = getattr(fcntl, "F_OFD_SETLK", None) if sys.platform != "win32" \
    else None
_OFFSETS: Final = 0x7FFF_FFFF_FFFF_FFFF  # off_t is signed: a lock byte lies below 2**63
_FLOCK: Final = struct.Struct("hhqqi4x")  # struct flock: type, whence, start, len, pid


class SessionClaims:
    """The sessions held within this process, claimed and given back atomically."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()  # several event loops (the `_sync` twins) may share us

    def hold(self, session_id: str) -> _Held:
        """Hold `session_id` for the block; RunConflictError at once if it is held already."""
        return _Held(self, session_id)

    def lease(self, session_id: str) -> _Held:
        """`hold` as the async context manager `SessionLeasing.lease` is."""
        return _Held(self, session_id)

    def _claim(self, session_id: str) -> None:
        with self._lock:
            if session_id in self._held:
                raise RunConflictError(session_id)
            self._held.add(session_id)

    def _give_back(self, session_id: str) -> None:
        with self._lock:
            self._held.discard(session_id)


class _Held:
    """A session held in a `SessionClaims`, with and `async with`: a class, not a generator
    context manager, as it is taken once per run."""

    __slots__ = ("_claims", "_session_id")

    def __init__(self, claims: SessionClaims, session_id: str) -> None:
        self._claims = claims
        self._session_id = session_id

    def __enter__(self) -> None:
        self._claims._claim(self._session_id)

    def __exit__(self, *exc_info: object) -> None:
        self._claims._give_back(self._session_id)

    async def __aenter__(self) -> None:
        self._claims._claim(self._session_id)

    async def __aexit__(self, *exc_info: object) -> None:
        self._claims._give_back(self._session_id)


class RangeLeases:
    """Leases across processes as locks on one byte each of one shared file, at the
    session's 64-bit key: two `fcntl` calls on a descriptor opened once, where a `file_lease`
    creates, locks and deletes a file of the session's own (tens of microseconds each).

    Linux's open file description locks: owned by the open file, not the process, so two
    stores in one process exclude each other as two processes do, and dropped by the kernel
    when the file's last descriptor closes, that is when the process dies. Locks taken
    through the same open file never conflict, so the sessions held through it are also
    claimed in a `SessionClaims`. Two sessions whose keys collide share a lock, as they do in
    PostgreSQL's advisory locks. `available()` says whether the platform has these locks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._claims = SessionClaims()
        self._fd: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        return _OFD_SETLK is not None

    @contextlib.contextmanager
    def hold(self, session_id: str, key: int) -> Iterator[None]:
        """Hold the session's byte for the block; RunConflictError at once if it is held.

        Raises:
            RunConflictError: another store, in this process or another, holds the session.
            StoreError: the lock file cannot be opened or locked.
        """
        with self._claims.hold(session_id):
            fd = self._open()
            offset = key & _OFFSETS
            _set_lock(fd, fcntl.F_WRLCK, offset, session_id, self.path)
            try:
                yield
            finally:
                if self._fd == fd:  # else `close` gave the lock back with the file
                    _set_lock(fd, fcntl.F_UNLCK, offset, session_id, self.path)

    def close(self) -> None:
        """Close the file, which gives back any lock still held through it."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _open(self) -> int:
        with self._lock:
            if self._fd is None:
                try:
                    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except OSError as exc:
                    raise StoreError(f"cannot open the lease file {self.path!r}: {exc}") from exc
            return self._fd


def _set_lock(fd: int, kind: int, offset: int, session_id: str, path: str) -> None:
    assert _OFD_SETLK is not None
    try:
        fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise RunConflictError(session_id) from None
        raise StoreError(f"cannot lock the lease file {path!r}: {exc}") from exc


def lease_file_name(key: int) -> str:
    """The lock file's name for a session's 64-bit lease key (`_sql.lease_key`)."""
    return f"{key & 0xFFFF_FFFF_FFFF_FFFF:016x}.lock"


@contextlib.contextmanager
def file_lease(path: str, session_id: str) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` for the block, across processes.

    Never waits: a lock held elsewhere raises RunConflictError at once. The file is created
    if missing and deleted on release.

    Raises:
        RunConflictError: another descriptor, in this process or another, holds the lock.
        StoreError: the file cannot be created or locked.
    """
    fd = _claim(path, session_id)
    try:
        yield
    finally:
        # Deleted before unlocking: whoever locks the old inode after this sees it is gone.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _claim(path: str, session_id: str) -> int:
    if sys.platform == "win32":  # no flock: refusing is better than a guarantee not kept
        raise StoreError("SQLite session leases need POSIX file locks (fcntl), which this "
                         "platform lacks; use PostgresStore to run sessions here")
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lease file {path!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunConflictError(session_id) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock the lease file {path!r}: {exc}") from exc
        if _still_names(path, fd):
            return fd
        os.close(fd)  # locked a file its holder had just deleted: try the one at the path now
    raise RunConflictError(session_id)


def _still_names(path: str, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    locked = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (locked.st_dev, locked.st_ino)

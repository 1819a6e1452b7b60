"""Typed errors of the event log; callers branch on these, never on message text."""

from __future__ import annotations

import errno
import os

import apsw


class LogError(Exception):
    """Base of every error the event log raises."""


class DatabaseOpenError(LogError):
    """The database cannot be opened as a skillops log (missing dir, foreign file, newer schema)."""


class ConcurrencyError(LogError):
    """An append stated an expected stream version that did not match; nothing was written."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class EventDecodeError(LogError):
    """A stored event could not be decoded or upcast to a known type."""


class CorruptEventError(LogError):
    """A stored event cannot be read back: its payload (row, frame or dictionary) is damaged.

    Names the position, so a reader's one-line error says where; ``skillopsctl verify``
    walks the whole log and reports the first such fault.
    """

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event {position} is unreadable: {reason}")
        self.position = position
        self.reason = reason


class LogBusyError(LogError):
    """Another writer held the database lock for longer than the busy timeout."""


class EventErasedError(LogError):
    """The payload of this event was erased on request; only its envelope and digest remain."""


class StorageError(LogError):
    """The database's storage failed: disk full, an I/O error, or a read-only file system.

    Nothing half-written stays: the transaction that met it was rolled back. The condition is
    usually outside skillops (free some space, remount), so callers report it in one line and
    either retry later (the daemon) or exit (the CLI).
    """

    def __init__(self, path: object, what: str, kind: str) -> None:
        super().__init__(f"database {path}: {what} ({kind})")
        self.path = path
        self.what = what
        self.kind = kind  # "disk full", "I/O error" or "read-only": the state, for retries


# errno values that mean the storage (not the request) failed, and what each is called.
_OS_KINDS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only",
}


def storage_error(exc: BaseException, path: str | os.PathLike[str]) -> StorageError | None:
    """The :class:`StorageError` that ``exc`` (or an exception it was raised from) amounts to
    for the database at ``path``, or None when it is something else.

    SQLite's full/I-O/read-only errors always concern the database's files; an ``OSError``
    counts only when it names the database or one of the files beside it (``-wal``, ``-shm``,
    ``.lock``): an I/O error reading a transcript is the transcript's problem.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageError):
            return current
        kind = _apsw_kind(current)
        if kind is None and isinstance(current, OSError) and _names_db(current, path):
            kind = _OS_KINDS.get(current.errno or 0)
        # SQLite reports a full disk met while growing its shared-memory file, or creating
        # its WAL, as an I/O error or a failure to open: name the cause the user can act on.
        if kind in ("I/O error", None) and isinstance(current, _MAYBE_FULL) and _full(path):
            kind = "disk full"
        if kind is not None:
            what = current.strerror if isinstance(current, OSError) else None
            return StorageError(path, what or str(current) or kind, kind)
        current = current.__cause__ or current.__context__
    return None


def _apsw_kind(exc: BaseException) -> str | None:
    if isinstance(exc, apsw.FullError):
        return "disk full"
    if isinstance(exc, apsw.ReadOnlyError):
        return "read-only"
    if isinstance(exc, apsw.IOError):
        return "I/O error"
    return None


# Less free space than this is full: SQLite's shared memory alone needs 32 KiB.
_FULL_BELOW = 64 * 1024
_MAYBE_FULL = (apsw.IOError, apsw.CantOpenError, OSError)


def _full(path: str | os.PathLike[str]) -> bool:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BELOW


def _names_db(exc: OSError, path: str | os.PathLike[str]) -> bool:
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return any(os.fsdecode(n).startswith(os.fspath(path)) for n in names)

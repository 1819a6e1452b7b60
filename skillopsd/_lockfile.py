"""The daemon's lock beside the database, and who holds it (for ``status``)."""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec

PROC_LOCKS = Path("/proc/locks")


def lock_path(db_path: Path) -> Path:
    """Where the daemon of ``db_path`` holds its exclusive lock."""
    return Path(f"{db_path}.lock")


class Holder(msgspec.Struct, frozen=True):
    """A running daemon: its pid and when it took the lock (ISO UTC)."""

    pid: int
    since: str


def holder(db_path: Path, locks: Path | None = None) -> Holder | None:
    """The daemon holding ``db_path``'s lock, or None when no one holds it.

    On Linux it is read from the kernel's lock table, ``/proc/locks`` (``locks`` names
    another file for tests): reading never takes the lock itself, so asking cannot make a
    daemon that is starting at that moment think another one runs. Where there is no such
    table (macOS, the BSDs), see :func:`_holder_by_pid`.
    """
    path = lock_path(db_path)
    try:
        st = path.stat()
    except OSError:
        return None
    try:
        table = (PROC_LOCKS if locks is None else locks).read_text()
    except OSError:
        return _holder_by_pid(path, st)
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 12345 fe:00:2424872 0 EOF" (device major:minor in hex)
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or parts[3] != "WRITE":
            continue
        fields = parts[5].split(":")
        if len(fields) != 3:
            continue
        try:
            major, minor, inode = int(fields[0], 16), int(fields[1], 16), int(fields[2])
            pid = int(parts[4])
        except ValueError:
            continue
        if (major, minor, inode) == (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino):
            return Holder(pid=pid, since=_since(st))
    return None


def _since(st: os.stat_result) -> str:
    # The daemon writes its pid into the file as it takes the lock: its mtime is when.
    since = datetime.fromtimestamp(st.st_mtime, UTC)
    return since.isoformat(timespec="seconds").replace("+00:00", "Z")


def _holder_by_pid(path: Path, st: os.stat_result) -> Holder | None:
    """Without a lock table: the pid the daemon wrote into its lock file, when that process
    is alive and the lock is held.

    A pid alone could be stale (the daemon was killed) or reused by another process since,
    so a live pid is confirmed by trying for a shared lock without waiting: a daemon holding
    its exclusive one refuses it. Only then is the lock touched at all, and the probe lets go
    at once; a dead pid answers without it.
    """
    try:
        with path.open("rb") as handle:
            text = handle.read(32).strip()
            pid = int(text) if text.isdigit() else 0
            if pid <= 0 or not _alive(pid):
                return None
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return Holder(pid=pid, since=_since(st))
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None  # the pid is another process's now: no daemon holds the lock
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process took the pid: the daemon is the user's own
    return True

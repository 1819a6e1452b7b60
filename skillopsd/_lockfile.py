"""The daemon's lock beside the database, and who holds it (for ``status``)."""

from __future__ import annotations

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


def holder(db_path: Path, locks: Path = PROC_LOCKS) -> Holder | None:
    """The daemon holding ``db_path``'s lock, read from the kernel's lock table (Linux).

    Reading ``/proc/locks`` never takes the lock itself, so asking cannot make a daemon that
    is starting at that moment think another one runs. None when no one holds it (or the
    table cannot be read).
    """
    path = lock_path(db_path)
    try:
        st = path.stat()
        table = locks.read_text()
    except OSError:
        return None
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
            # The daemon writes its pid into the file as it takes the lock: its mtime is when.
            since = datetime.fromtimestamp(st.st_mtime, UTC)
            return Holder(pid=pid, since=since.isoformat(timespec="seconds").replace("+00:00", "Z"))
    return None

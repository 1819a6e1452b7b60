"""Writing a file so a reader sees the old bytes or the new, never a mix, even after a crash."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Temp file beside ``path``, fsync, rename over it, fsync the directory.

    The file gets ``mode``; without one, the mode of the file it replaces, or for a new file
    what the umask gives. A user's live ``SKILL.md`` may be read by another account (a team
    skills folder, an agent in a container): the temp file's own 0600 must not replace it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_if_changed(path: Path, data: bytes, *, mode: int | None = None) -> bool:
    """:func:`write_atomic` unless ``path`` already holds exactly ``data``; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data, mode=mode)
    return True


def _umask() -> int:
    # Reading the umask means setting it; set it straight back.
    current = os.umask(0o077)
    os.umask(current)
    return current

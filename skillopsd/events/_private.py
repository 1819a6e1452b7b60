"""The database's files are the user's alone: 0700 for its folder, 0600 for each file.

A database holds every transcript line captured: a folder or file others can read leaks all
of it. New ones are created private (Database.open, the daemon's umask); an existing one
with looser modes (copied with ``cp``, restored from a backup, made under another umask) is
tightened when the daemon starts, and what cannot be tightened (another owner, a read-only
file system) is reported by ``status`` and the daemon's log.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

# Files SQLite and the daemon keep beside the database.
_BESIDE = ("-wal", "-shm", ".lock")


class LoosePermission(msgspec.Struct, frozen=True):
    """A file or folder of the database that others may read or write."""

    path: str
    mode: int  # the permission bits found
    wanted: int  # what they must be
    error: str | None = None  # why tightening it failed (None: not tried, or done)

    def describe(self) -> str:
        what = f"{self.path} is mode {self.mode:04o}, readable or writable by others"
        if self.error is not None:
            return f"{what}; cannot change it to {self.wanted:04o}: {self.error}"
        return f"{what}; run chmod {self.wanted:o} on it (skillopsd does at start)"


def _candidates(db_path: Path, data_dir: Path | None) -> list[tuple[Path, int]]:
    found = [(db_path, 0o600)] + [(Path(f"{db_path}{s}"), 0o600) for s in _BESIDE]
    if data_dir is not None and db_path.parent == data_dir:
        # Only the default folder, which skillops made: a --db in a shared folder (/tmp)
        # must never have that folder's mode changed.
        found.insert(0, (data_dir, 0o700))
    return found


def loose(db_path: Path, data_dir: Path | None) -> list[LoosePermission]:
    """The database's folder (if ``data_dir``, the default one) and files that others can
    reach; changes nothing."""
    out = []
    for path, wanted in _candidates(db_path, data_dir):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # absent (no WAL now): nothing to leak
        if mode & 0o077:
            out.append(LoosePermission(str(path), mode, wanted))
    return out


def tighten(
    db_path: Path, data_dir: Path | None
) -> tuple[list[LoosePermission], list[LoosePermission]]:
    """Make each loose file or folder private: ``(tightened, still loose with why)``."""
    done: list[LoosePermission] = []
    failed: list[LoosePermission] = []
    for found in loose(db_path, data_dir):
        try:
            os.chmod(found.path, found.wanted)
        except OSError as exc:
            failed.append(msgspec.structs.replace(found, error=exc.strerror or str(exc)))
        else:
            done.append(found)
    return done, failed

"""Which failures are the database's storage failing (and so a sentence and a retry)."""

from __future__ import annotations

import errno
from pathlib import Path

import apsw
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.events import DatabaseOpenError, StorageError, storage_error

DB = Path("/data/skillops/skillops.db")
STORAGE_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk full", errno.EIO: "I/O error"}
STORAGE_ERRNOS[errno.EROFS] = "read-only"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (apsw.FullError("database or disk is full"), "disk full"),
        (apsw.ReadOnlyError("attempt to write a readonly database"), "read-only"),
        (apsw.ConstraintError("UNIQUE constraint failed"), None),
        (apsw.BusyError("database is locked"), None),
        (apsw.CorruptError("database disk image is malformed"), None),
        (ValueError("bad"), None),
    ],
)
def test_sqlite_errors(exc: Exception, kind: str | None) -> None:
    error = storage_error(exc, DB)
    assert (error.kind if error else None) == kind
    if error is not None:
        assert str(error) == f"database {DB}: {exc} ({kind})"


def test_io_error_is_disk_full_only_on_a_full_disk(tmp_path: Path) -> None:
    # tmp_path's file system has room: an I/O error there is an I/O error.
    error = storage_error(apsw.IOError("disk I/O error"), tmp_path / "x.db")
    assert error is not None and error.kind == "I/O error"
    assert storage_error(apsw.CantOpenError("unable to open"), tmp_path / "x.db") is None


def test_found_through_the_errors_raised_from_it() -> None:
    try:
        try:
            raise apsw.FullError("database or disk is full")
        except apsw.Error as exc:
            raise DatabaseOpenError(f"{DB}: not a skillops database ({exc})") from exc
    except DatabaseOpenError as outer:
        error = storage_error(outer, DB)
    assert error is not None and error.kind == "disk full"
    already = StorageError(DB, "x", "read-only")
    assert storage_error(RuntimeError("wrapped"), DB) is None
    assert storage_error(already, DB) is already


@given(
    code=st.sampled_from(sorted({*STORAGE_ERRNOS, errno.ENOENT, errno.EACCES, errno.EINVAL})),
    name=st.sampled_from(
        [str(DB), f"{DB}-wal", f"{DB}-shm", f"{DB}.lock", "/home/u/.claude/x.jsonl", None]
    ),
)
def test_os_errors_count_only_on_the_database_files(code: int, name: str | None) -> None:
    exc = OSError(code, "msg") if name is None else OSError(code, "msg", name)
    error = storage_error(exc, DB)
    ours = name is not None and name.startswith(str(DB))
    expected = STORAGE_ERRNOS.get(code) if ours else None
    assert (error.kind if error else None) == expected
    if error is not None:
        assert str(error) == f"database {DB}: msg ({expected})"

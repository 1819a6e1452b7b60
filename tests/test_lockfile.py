"""Who holds the daemon's lock, as `status` asks it: with /proc/locks and without (macOS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skillopsd._lockfile import PROC_LOCKS, holder, lock_path
from skillopsd.daemon import acquire_lock


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "skillops.db"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("table", ["proc", "missing"])
def test_the_daemon_holding_the_lock_is_found(db: Path, tmp_path: Path, table: str) -> None:
    if table == "proc" and not PROC_LOCKS.exists():
        pytest.skip("no /proc/locks here")
    locks = PROC_LOCKS if table == "proc" else tmp_path / "no-such-locks"
    handle = acquire_lock(db)
    try:
        found = holder(db, locks)
        assert found is not None and found.pid == os.getpid()
        assert found.since.endswith("Z")
    finally:
        handle.close()
    assert holder(db, locks) is None


def test_without_a_lock_table_a_live_pid_that_holds_no_lock_is_not_a_daemon(
    db: Path, tmp_path: Path
) -> None:
    # The pid in the file is alive (this very process took it over) but nothing holds the
    # lock: a daemon killed with SIGKILL whose pid was reused.
    lock_path(db).write_text(str(os.getpid()))
    assert holder(db, tmp_path / "missing") is None
    # Asking let go of its probe: a daemon can still take the lock afterwards.
    acquire_lock(db).close()


@pytest.mark.parametrize("content", ["dead", "", "garbage", "-1", "0", "12 34", "\x00\xff"])
def test_without_a_lock_table_a_stale_or_unreadable_pid_is_not_a_daemon(
    db: Path, tmp_path: Path, content: str
) -> None:
    text = str(_dead_pid()) if content == "dead" else content
    lock_path(db).write_text(text, errors="surrogateescape")
    assert holder(db, tmp_path / "missing") is None


def test_no_lock_file_is_no_daemon(db: Path, tmp_path: Path) -> None:
    assert holder(db, tmp_path / "missing") is None
    assert holder(db) is None

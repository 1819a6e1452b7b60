"""The write-ahead log does not keep a backfill's size beside the database."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events._db import WAL_SIZE_LIMIT
from skillopsd.events.types import PolicySet

from ._capture_helpers import FIXTURES, claude_project, file_lines
from ._daemon import DaemonProcess, captured_line_count, db_path, wait_for


def _wal(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_large_write_leaves_at_most_the_limit_once_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = Database.open(path)
    log = EventLog(db)
    rnd = random.Random(7)
    # Incompressible payloads, twice the limit, in one transaction: the WAL must grow.
    big = [
        NewEvent("p", PolicySet(name=f"n{i}", values={"v": rnd.randbytes(48_000).hex()}))
        for i in range(WAL_SIZE_LIMIT // 48_000)
    ]
    log.append(big)
    assert _wal(path) > WAL_SIZE_LIMIT
    db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    log.append([NewEvent("p", PolicySet(name="after", values={}))])
    assert _wal(path) <= WAL_SIZE_LIMIT
    db.close()


def test_the_daemon_empties_the_wal_after_its_backfill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    names = ("claude_skill.jsonl", "claude_reasoning.jsonl", "claude_injected_skill.jsonl")
    for name in names:
        shutil.copy(FIXTURES / name, project / name)
    expected = sum(len(file_lines(FIXTURES / n)) for n in names)
    daemon = DaemonProcess(home, "--rescan-interval", "300")
    try:
        wait_for(lambda: captured_line_count(home) == expected, timeout=30)
        # Still running, following: the backfill's pages are in the database file.
        wait_for(lambda: _wal(db_path(home)) == 0, timeout=15)
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert os.path.getsize(db_path(home)) > 0

""" "Captured N lines" counts the lines that process stored, not the lines it read (issue 19,
item 6): under two writers, what each reports adds up to what the log holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import apsw
import pytest

from skillopsd.events import Database
from skillopsd.sources import STORES, Capturer, capture_all

from ._capture_helpers import FIXTURES, claude_project, codex_path, file_lines
from .conftest import ctl_command


def _stored_lines(path: Path) -> int:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(
            "SELECT count(*) FROM events WHERE type = 'TranscriptLineCaptured'"
        ).fetchone()[0]
    finally:
        conn.close()


def test_a_batch_lost_to_another_writer_is_not_counted(tmp_path: Path) -> None:
    """Writer A stages a file's lines; writer B stores them first; A's batch loses the race,
    A reads the file again from B's offset and stores nothing of it: A must say so."""
    home = tmp_path / "home"
    first = claude_project(home) / "a.jsonl"
    shutil.copy(FIXTURES / "claude_skill.jsonl", first)
    second = codex_path(home)
    shutil.copy(FIXTURES / "codex_skill.jsonl", second)
    claude, codex = STORES["claude"], STORES["codex"]
    path = tmp_path / "s.db"
    db_a, db_b = Database.open(path), Database.open(path)
    other = Capturer(db_b)
    raced = False

    def b_goes_first() -> bool:  # asked by A's capture_all between its files
        nonlocal raced
        if not raced:
            raced = True
            assert capture_all(other, [(first, claude)]).lines == len(file_lines(first))
        return False

    a = Capturer(db_a, should_stop=b_goes_first)
    result = capture_all(a, [(first, claude), (second, codex)])
    assert raced and a.races == 1
    assert result.lines == len(file_lines(second))  # only what A stored
    assert result.lines + len(file_lines(first)) == _stored_lines(path)
    db_a.close()
    db_b.close()


@pytest.mark.slow
def test_two_ingests_at_once_report_together_what_is_stored(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    for i in range(40):
        shutil.copy(FIXTURES / "claude_skill.jsonl", folder / f"s{i:02d}.jsonl")
    db = tmp_path / "s.db"
    Database.open(db).close()  # both start on an existing database
    procs = [
        subprocess.Popen(
            [*ctl_command(), "--db", str(db), "ingest", str(folder), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reported = 0
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reported += json.loads(out)["lines"]
    assert reported == _stored_lines(db)

"""A copied or restored database syncs again once the user follows the refusal (reviewer G22).

A log's machine id is the hash of its first event, so a database file copied to another
laptop (or restored from a backup) is the same machine to the server; once it records events
of its own, the server refuses it for good. The refusal says so in a user's terms and names
the way forward, which this test follows through the real ``skillopsd`` and ``skillopsctl``
against a real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ._daemon import daemon_env, db_path
from ._postgres import Server, start_server
from .conftest import console_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from start_server()


def _session(home: Path, n: int) -> None:
    """One small Claude Code session (its own id and day)."""
    sid = f"{n:08d}-2222-4000-8000-000000000022"
    folder = home / ".claude" / "projects" / "-work-copied"
    folder.mkdir(parents=True, exist_ok=True)
    usage = {"input_tokens": 10, "output_tokens": 5}
    lines = [
        {"type": "user", "message": {"role": "user", "content": f"task {n}"}},
        {
            "type": "assistant",
            "message": {
                "id": f"msg_c{n}",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [{"type": "text", "text": "Done."}],
                "stop_reason": "end_turn",
                "usage": usage,
            },
        },
    ]
    with open(folder / f"{sid}.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(lines):
            d.update(
                sessionId=sid,
                uuid=f"c{n}-{i}",
                parentUuid=f"c{n}-{i - 1}" if i else None,
                timestamp=f"2026-11-{n:02d}T10:00:0{i}.000Z",
                cwd="/work/copied",
            )
            f.write(json.dumps(d) + "\n")


def _capture(home: Path) -> None:
    subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=daemon_env(home),
        check=True,
        capture_output=True,
        timeout=120,
    )


def _sync(home: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("skillopsctl"), "sync", "--to", url],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _machines(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT machine) FROM skillops_events").fetchone()
    return int(row[0]) if row else 0


def _follow_the_way_forward(home: Path, refused: str) -> None:
    """What the refusal says to do: move the database aside, capture into a new log."""
    db = db_path(home)
    assert str(db) in refused and "skillopsd --once" in refused and "move" in refused
    db.rename(db.with_name("skillops.copy.db"))
    for extra in db.parent.glob("skillops.db-*"):  # the WAL and shared memory files
        extra.rename(db.with_name("skillops.copy.db" + extra.name.removeprefix("skillops.db")))
    _capture(home)


def test_a_copied_database_is_told_how_to_sync_as_a_new_machine(
    tmp_path: Path, server: Server
) -> None:
    url = server.new_database()
    laptop, copy = tmp_path / "laptop", tmp_path / "copy"
    laptop.mkdir()
    _session(laptop, 1)
    _capture(laptop)
    assert _sync(laptop, url).returncode == 0
    # The new laptop: the database folder copied, then each machine works on its own.
    shutil.copytree(db_path(laptop).parent, db_path(copy).parent)
    _session(laptop, 2)
    _session(copy, 3)
    _capture(laptop)
    _capture(copy)
    assert _sync(laptop, url).returncode == 0

    refused = _sync(copy, url)
    assert refused.returncode == 1, refused.stderr
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "differs at position" in line and "a copy or a restored backup" in line
    # Every later sync says the same: nothing changes until the user acts.
    assert _sync(copy, url).stderr.strip() == line
    assert _machines(url) == 1

    status = subprocess.run(
        [console_script("skillopsctl"), "status"],
        env=daemon_env(copy),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "skillopsctl sync says how to sync it as a new machine" in " ".join(
        status.stdout.split()
    )
    _follow_the_way_forward(copy, line)
    done = _sync(copy, url)
    assert done.returncode == 0, done.stderr
    assert _machines(url) == 2
    assert _sync(laptop, url).returncode == 0  # the original is untouched


def test_a_restored_older_backup_is_told_the_same(tmp_path: Path, server: Server) -> None:
    url = server.new_database()
    home = tmp_path / "home"
    home.mkdir()
    _session(home, 1)
    _capture(home)
    assert _sync(home, url).returncode == 0
    backup = tmp_path / "backup"
    shutil.copytree(db_path(home).parent, backup)
    _session(home, 2)
    _capture(home)
    assert _sync(home, url).returncode == 0
    # The disk dies; last week's backup is restored.
    shutil.rmtree(db_path(home).parent)
    shutil.copytree(backup, db_path(home).parent)
    refused = _sync(home, url)
    assert refused.returncode == 1, refused.stderr
    line = refused.stderr.strip()
    assert "it is not the log that was synced" in line and "a copy or a restored backup" in line
    _follow_the_way_forward(home, line)
    done = _sync(home, url)
    assert done.returncode == 0, done.stderr
    assert _machines(url) == 2

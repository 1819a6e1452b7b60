"""Loose permissions on the database are repaired at start or reported (issue 19, item 4)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from skillopsd.events import _private

from ._daemon import daemon_env, db_path
from .conftest import console_script, run_ctl


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _once(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [console_script("skillopsd"), "--once", "--no-derive", *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_a_loose_data_folder_and_database_are_shown_then_tightened_at_start(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _once(home)
    db = db_path(home)
    assert _mode(db.parent) == 0o700 and _mode(db) == 0o600
    # Copied with cp, restored from a backup, made under umask 022:
    os.chmod(db.parent, 0o755)
    os.chmod(db, 0o644)

    shown = run_ctl("status", env=daemon_env(home))
    assert shown.returncode == 0, shown.stderr
    assert f"permissions  {db.parent} is mode 0755, readable or writable by others" in shown.stdout
    assert f"permissions  {db} is mode 0644" in shown.stdout
    report = json.loads(run_ctl("status", "--json", env=daemon_env(home)).stdout)
    found = {(p["path"], p["mode"], p["wanted"]) for p in report["permissions"]}
    assert {(str(db.parent), 0o755, 0o700), (str(db), 0o644, 0o600)} <= found
    # SQLite makes its -wal and -shm with the database's mode: reported alike.
    assert {p for p, _, _ in found} <= {str(db.parent), str(db), f"{db}-wal", f"{db}-shm"}
    # status only reports: it changed nothing
    assert _mode(db.parent) == 0o755 and _mode(db) == 0o644

    done = _once(home)
    assert _mode(db.parent) == 0o700 and _mode(db) == 0o600
    for beside in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert not beside.exists() or _mode(beside) == 0o600
    assert done.stderr.count('"permissions tightened"') >= 2
    report = json.loads(run_ctl("status", "--json", env=daemon_env(home)).stdout)
    assert report["permissions"] == []
    assert "permissions" not in run_ctl("status", env=daemon_env(home)).stdout


def test_a_database_in_a_shared_folder_never_changes_the_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    db = shared / "s.db"
    home = tmp_path / "home"
    home.mkdir()
    _once(home, "--db", str(db))
    os.chmod(db, 0o640)
    _once(home, "--db", str(db))
    assert _mode(shared) == 0o1777 and _mode(db) == 0o600


def test_what_cannot_be_tightened_is_reported_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "skillops"
    folder.mkdir(mode=0o750)
    db = folder / "skillops.db"
    db.write_bytes(b"")
    os.chmod(db, 0o604)

    def refuse(path: str, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(_private.os, "chmod", refuse)
    done, failed = _private.tighten(db, folder)
    assert done == []
    assert [f.describe() for f in failed] == [
        f"{folder} is mode 0750, readable or writable by others; cannot change it to 0700:"
        " Operation not permitted",
        f"{db} is mode 0604, readable or writable by others; cannot change it to 0600:"
        " Operation not permitted",
    ]

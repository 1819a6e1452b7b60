"""Disk full, read-only and I/O errors: a sentence and a retry, never a traceback or a lost line.

Every test runs on a real small tmpfs (root may mount one; elsewhere these skip, and fail
under CI), filled with a ballast file the test deletes to give the space back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from skillopsd.events import Database, verify_chain
from skillopsd.sources import Capturer, capture_all, discover, resolve_roots

from ._capture_helpers import (
    FIXTURES,
    captured,
    extract_corpus,
    layout_claude_pair,
    paths_by_source,
)
from ._daemon import DaemonProcess, daemon_env
from ._tmpfs import fill, remount, small_tmpfs
from .conftest import console_script, run_ctl

pytestmark = pytest.mark.slow

# Real transcripts of about this many lines in all (about 9 MB): several commits, so that
# the disk fills part-way through capture, yet few enough to keep the test quick.
SUBSET_LINES = 4500


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "fs", 64 * 1024) as mountpoint:
        yield mountpoint


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_corpus(tmp_path_factory.mktemp("corpus"))


def _subset_home(corpus: Path, home: Path) -> list[Path]:
    """A HOME holding real transcripts from the corpus (smallest first), as laid out there."""
    files = sorted(
        (p for p in corpus.rglob("*.jsonl") if p.is_file()), key=lambda p: p.stat().st_size
    )
    chosen: list[Path] = []
    lines = 0
    for source in files:
        if lines >= SUBSET_LINES:
            break
        target = home / source.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        chosen.append(target)
        lines += source.read_bytes().count(b"\n")
    return chosen


def _events(daemon: DaemonProcess) -> list[dict]:
    """The daemon's log lines (JSON off a terminal)."""
    out = []
    for line in daemon.logs().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": line, "level": "raw"})
    return out


def _said(daemon: DaemonProcess, fragment: str) -> list[dict]:
    return [e for e in _events(daemon) if fragment in str(e.get("event", ""))]


def _fingerprint(db_file: Path, home: Path) -> list[tuple[str, int, int, str]]:
    """Every captured (file, generation, offset, line hash), sorted; duplicates kept."""
    db = Database.open(db_file)
    try:
        assert verify_chain(db).ok
        paths = paths_by_source(db)
        return sorted(
            (
                os.path.relpath(paths[e.source_id], home),
                e.generation,
                e.offset,
                hashlib.sha256(e.line).hexdigest(),
            )
            for e in captured(db)
        )
    finally:
        db.close()


def _truncate_wal(db_file: Path) -> None:
    conn = apsw.Connection(str(db_file))
    try:
        conn.set_busy_timeout(10_000)
        busy, _log_pages, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        conn.close()


def _once(home: Path, db_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("skillopsd"), "--once", "--db", str(db_file), *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sessions(home: Path, db_file: Path) -> list[dict]:
    result = run_ctl("--db", str(db_file), "sessions", "--json", env=daemon_env(home))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_daemon_waits_out_a_full_disk_and_captures_every_line_once(
    corpus: Path, tmpfs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    files = _subset_home(corpus, home)
    # One transcript grows while the daemon follows it: a third after the disk first has
    # space again, a third while it is full the second time.
    growing = files[-1]
    data = growing.read_bytes()
    cut1 = data.rfind(b"\n", 0, len(data) // 3) + 1
    cut2 = data.rfind(b"\n", 0, len(data) * 2 // 3) + 1
    growing.write_bytes(data[:cut1])

    reference = tmp_path / "reference.db"
    assert _once(home, reference).returncode == 0
    needed = reference.stat().st_size
    ballast = tmpfs / "ballast"
    fill(ballast, leave=needed // 2)
    db_file = tmpfs / "skillops.db"

    def same_as_reference() -> None:
        assert _once(home, reference).returncode == 0
        expected = _fingerprint(reference, home)
        assert len(set(expected)) == len(expected)

        def caught_up() -> bool:
            try:
                return _fingerprint(db_file, home) == expected
            except Exception:
                return False

        daemon.wait_for(caught_up, timeout=60)
        daemon.wait_for(lambda: _sessions(home, db_file) == _sessions(home, reference), timeout=60)

    daemon = DaemonProcess(home, "-v", "--db", str(db_file), env=daemon_env(home))
    try:
        # 1. The disk fills during the backfill.
        daemon.wait_for(lambda: bool(_said(daemon, "(disk full); retrying in")), timeout=60)
        # Two more failed retries, still one sentence.
        daemon.wait_for(lambda: len(_said(daemon, "storage still failing")) >= 2, timeout=30)
        assert daemon.proc.poll() is None, daemon.logs()[-3000:]
        told = _said(daemon, "retrying in")
        assert len(told) == 1, told
        assert told[0]["level"] == "error"
        assert told[0]["event"].startswith(f"database {db_file}: ")
        # It filled part-way: each retry starts from what was committed before it.
        pending = [e["pending_bytes"] for e in _said(daemon, "backfill started")]
        assert pending[0] > pending[1] > 0

        ballast.unlink()
        daemon.wait_for(lambda: len(_said(daemon, "writable again")) == 1, timeout=60)
        with open(growing, "ab") as fh:
            fh.write(data[cut1:cut2])
        same_as_reference()

        # 2. The disk fills while following: the new lines wait for space. SQLite reuses
        # its write-ahead log's pages, already allocated, so empty it first: the next write
        # then needs new space.
        _truncate_wal(db_file)
        fill(ballast)
        with open(growing, "ab") as fh:
            fh.write(data[cut2:])
        daemon.wait_for(lambda: len(_said(daemon, "(disk full); retrying in")) == 2, timeout=60)
        assert daemon.proc.poll() is None, daemon.logs()[-3000:]
        ballast.unlink()
        daemon.wait_for(lambda: len(_said(daemon, "writable again")) == 2, timeout=60)
        same_as_reference()
    finally:
        assert daemon.stop() == 0, daemon.logs()[-3000:]
    assert "Traceback" not in daemon.logs()
    assert len(_said(daemon, "retrying in")) == 2
    check = run_ctl("--db", str(db_file), "verify")
    assert check.returncode == 0, check.stdout + check.stderr


def test_full_disk_at_start_once_exits_2_service_waits_and_stops_on_sigterm(
    tmpfs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    layout_claude_pair(home)
    db_file = tmpfs / "skillops.db"
    fill(tmpfs / "ballast")

    once = _once(home, db_file)
    assert once.returncode == 2
    lines = once.stderr.strip().splitlines()
    assert len(lines) == 1, once.stderr
    assert lines[0].startswith(f"skillopsd: database {db_file}: ")
    assert lines[0].endswith("(disk full)")

    # The service waits instead, telling systemd why and feeding its watchdog meanwhile.
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    env = daemon_env(home, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="200000")
    daemon = DaemonProcess(home, "--db", str(db_file), env=env)
    messages: list[str] = []
    try:
        while sum(m == "WATCHDOG=1" for m in messages[_status_index(messages) :]) < 3:
            messages.extend(sock.recv(4096).decode().splitlines())
    finally:
        sock.close()
    assert "READY=1" in messages
    told = _said(daemon, "(disk full); retrying in")
    assert len(told) == 1 and told[0]["event"].startswith(f"database {db_file}: ")
    assert daemon.proc.poll() is None
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=5) == 0, daemon.logs()
    assert time.monotonic() - started < 5
    assert "Traceback" not in daemon.logs()


def _status_index(messages: list[str]) -> int:
    """Where systemd was first told of the full disk (the end if it was not)."""
    for i, m in enumerate(messages):
        if m.startswith("STATUS=") and "(disk full)" in m:
            return i
    return len(messages)


def _unprojected_db(home: Path, db_file: Path) -> None:
    """A database holding captured real lines that no projection has seen yet."""
    layout_claude_pair(home)
    db = Database.open(db_file)
    try:
        capture_all(Capturer(db), list(discover(resolve_roots(env={"HOME": str(home)}))))
    finally:
        db.close()


# Every command that writes: queries bring projections up to date first; ingest captures.
WRITING_COMMANDS = [
    ["sessions"],
    ["sessions", "--json"],
    ["export", "jsonl"],
    ["rebuild"],
    ["rederive"],
    ["ingest", "{new}"],
]


@pytest.mark.parametrize("command", WRITING_COMMANDS, ids=" ".join)
def test_query_on_a_full_disk_is_one_line_and_exit_2(
    command: list[str], tmpfs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    db_file = tmpfs / "skillops.db"
    _unprojected_db(home, db_file)
    new = tmp_path / "new" / "codex_skill.jsonl"
    new.parent.mkdir()
    shutil.copy(FIXTURES / "codex_skill.jsonl", new)
    command = [c.replace("{new}", str(new)) for c in command]
    before = db_file.read_bytes()
    ballast = tmpfs / "ballast"
    fill(ballast)

    result = run_ctl("--db", str(db_file), *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"skillopsctl: database {db_file}: ")
    assert result.stderr.strip().endswith("(disk full)")
    assert db_file.read_bytes() == before  # nothing half-written

    ballast.unlink()
    assert run_ctl("--db", str(db_file), *command).returncode == 0
    assert run_ctl("--db", str(db_file), "verify").returncode == 0


def test_query_on_a_read_only_file_system_is_one_line_and_exit_2(
    tmpfs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    db_file = tmpfs / "skillops.db"
    _unprojected_db(home, db_file)
    remount(tmpfs, "ro")
    try:
        result = run_ctl("--db", str(db_file), "sessions")
    finally:
        remount(tmpfs, "rw")
    # Refused before any write is tried (the file is not writable): the same one line.
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert str(db_file) in result.stderr and "writable" in result.stderr
    assert run_ctl("--db", str(db_file), "sessions").returncode == 0


# Queries that only read (every projection already current): SQLite must still make its
# shared-memory and WAL files to open a WAL database, so on a full disk they answer as the
# README says, the same one line and exit 2, and nothing is changed (issue 19, item 6).
READING_COMMANDS = [
    ["sessions"],
    ["sessions", "--json"],
    ["status"],
    ["log", "--limit", "3"],
    ["verify"],
    ["skills"],
]


@pytest.mark.parametrize("command", READING_COMMANDS, ids=" ".join)
def test_a_query_that_only_reads_on_a_full_disk_is_the_same_one_line(
    command: list[str], tmpfs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    db_file = tmpfs / "skillops.db"
    _unprojected_db(home, db_file)
    expected = run_ctl("--db", str(db_file), *command)  # projections brought current
    assert expected.returncode == 0, expected.stderr
    before = db_file.read_bytes()
    ballast = tmpfs / "ballast"
    fill(ballast)

    result = run_ctl("--db", str(db_file), *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"skillopsctl: database {db_file}: ")
    assert result.stderr.strip().endswith("(disk full)")
    assert "Traceback" not in result.stderr
    assert db_file.read_bytes() == before

    ballast.unlink()
    again = run_ctl("--db", str(db_file), *command)
    assert again.returncode == 0, again.stderr

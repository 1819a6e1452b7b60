"""End-to-end: a real skillopsd process on a temporary HOME."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from skillopsd.cli.daemon_unit import unit_text
from skillopsd.events import Database, verify_chain

from ._capture_helpers import (
    FIXTURES,
    capture_errors,
    captured,
    claude_project,
    codex_path,
    extract_corpus,
    file_lines,
    layout_claude_pair,
    paths_by_source,
)
from ._daemon import DaemonProcess, captured_line_count, daemon_env, db_path, wait_for
from .conftest import REPO, console_script, run_ctl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_corpus(tmp_path_factory.mktemp("corpus"))


def _home_with_corpus(corpus: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(parents=True)
    for name in (".claude", ".codex"):
        os.symlink(corpus / name, home / name)
    return home


def _run_once(home: Path) -> None:
    """``skillopsd --once`` on ``home``, to completion."""
    subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=daemon_env(home),
        check=True,
        capture_output=True,
        timeout=120,
    )


def _fingerprint(home: Path) -> tuple[set[tuple[str, int, int, str]], int, int]:
    """Every captured (file, generation, offset, line hash), the byte total and the event count."""
    db = Database.open(db_path(home))
    try:
        assert verify_chain(db).ok
        lines = captured(db)
        paths = paths_by_source(db)
        keys = {
            (
                os.path.relpath(paths[e.source_id], home),
                e.generation,
                e.offset,
                hashlib.sha256(e.line).hexdigest(),
            )
            for e in lines
        }
        total = sum(len(e.line) + 1 for e in lines)
        return keys, total, len(lines)
    finally:
        db.close()


def test_live_lines_in_random_chunks_are_captured_once_in_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    daemon = DaemonProcess(home, "--rescan-interval", "300")
    try:
        wait_for(lambda: db_path(home).exists())
        source = FIXTURES / "claude_injected_skill.jsonl"
        data = source.read_bytes()
        target = project / "5101a53f-28dd-4030-be70-a9bf552de00b.jsonl"
        rnd = random.Random(11)
        pos = 0
        with open(target, "wb") as fh:
            while pos < len(data):
                n = rnd.choice([3, 50, 400, 2000, 9000])
                fh.write(data[pos : pos + n])
                fh.flush()
                pos += n
                time.sleep(rnd.choice([0, 0.002, 0.02]))
        expected = file_lines(source)
        wait_for(lambda: captured_line_count(home) == len(expected), timeout=20)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    db = Database.open(db_path(home))
    assert [(e.offset, e.line) for e in captured(db)] == expected
    assert verify_chain(db).ok


def test_live_move_truncate_delete_malformed_oversized_and_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    rollout = codex_path(home)
    shutil.copy(FIXTURES / "codex_skill.jsonl", rollout)
    limit = max(len(line) for _, line in file_lines(rollout)) + 100
    daemon = DaemonProcess(home, "--rescan-interval", "300", "--max-line-bytes", str(limit))
    try:
        codex_lines = len(file_lines(rollout))
        daemon.wait_for(lambda: captured_line_count(home) == codex_lines)
        # Codex archives a session by moving it: not read again.
        archived = home / ".codex" / "archived_sessions" / rollout.name
        archived.parent.mkdir(parents=True)
        os.rename(rollout, archived)
        odd = project / "s.jsonl"
        secret = "ghp_" + "Q" * 36
        odd.write_bytes(
            b'{"sessionId":"s","n":1}\n'
            b'{"n":2}{"n":3}\n'
            + b'{"blob":"'
            + b"z" * limit
            + b'"}\n'
            + f'{{"text":"token {secret}"}}\n'.encode()
        )
        daemon.wait_for(lambda: captured_line_count(home) == codex_lines + 3, timeout=10)
        with open(odd, "r+b") as fh:  # truncated and rewritten
            fh.truncate(0)
            fh.write(b'{"sessionId":"s","n":"again"}\n')
        daemon.wait_for(lambda: captured_line_count(home) == codex_lines + 4)
        odd.unlink()
        os.kill(daemon.proc.pid, signal.SIGHUP)
        wait_for(lambda: "rescan" in daemon.logs())
    finally:
        assert daemon.stop() == 0, daemon.logs()
    db = Database.open(db_path(home))
    lines = captured(db)
    assert len(lines) == codex_lines + 4
    assert len({(e.source_id, e.generation, e.offset) for e in lines}) == len(lines)
    paths = paths_by_source(db)
    odd_lines = [e for e in lines if paths[e.source_id] == str(odd)]
    assert [e.json_ok for e in odd_lines] == [True, False, True, True]
    assert odd_lines[1].line == b'{"n":2}{"n":3}'
    assert secret.encode() not in odd_lines[2].line and b"[REDACTED" in odd_lines[2].line
    assert odd_lines[3].generation == 2
    (error,) = capture_errors(db)
    assert error.kind == "oversized" and error.length == limit + 11
    types = {r[0] for r in db.conn.execute("SELECT DISTINCT type FROM events")}
    assert {"SourceFileMoved", "SourceFileReset"} <= types
    assert verify_chain(db).ok


def test_sigterm_during_backfill_then_restart(corpus: Path, tmp_path: Path) -> None:
    reference = _home_with_corpus(corpus, tmp_path / "ref")
    _run_once(reference)
    want = _fingerprint(reference)

    home = _home_with_corpus(corpus, tmp_path / "run")
    daemon = DaemonProcess(home)
    daemon.wait_for(lambda: captured_line_count(home) > 0, timeout=60)
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait(10) == 0, daemon.logs()
    assert time.monotonic() - started < 5
    partial = captured_line_count(home)
    assert 0 < partial < want[2], "SIGTERM did not interrupt the backfill"
    _run_once(home)
    assert _fingerprint(home) == want


def test_sigterm_while_deriving_exits_promptly_and_resumes(corpus: Path, tmp_path: Path) -> None:
    home = _home_with_corpus(corpus, tmp_path / "run")
    daemon = DaemonProcess(home)
    daemon.wait_for(lambda: "backfill finished" in daemon.logs(), timeout=60)
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait(10) == 0, daemon.logs()
    assert time.monotonic() - started < 5
    _run_once(home)
    sessions = json.loads(run_ctl("sessions", "--json", env=daemon_env(home)).stdout)
    assert len(sessions) == 82


def test_sigkill_during_backfill_five_times_then_clean_finish(corpus: Path, tmp_path: Path) -> None:
    reference = _home_with_corpus(corpus, tmp_path / "ref")
    _run_once(reference)
    want = _fingerprint(reference)

    home = _home_with_corpus(corpus, tmp_path / "run")
    rnd = random.Random(2026)
    # Kill once the capture has passed a random share of the corpus, each time further on.
    targets = sorted(rnd.uniform(0.05, 0.95) * want[2] for _ in range(5))
    progress = []
    for target in targets:
        daemon = DaemonProcess(home, "--once")
        deadline = time.monotonic() + 60
        while captured_line_count(home) < target and daemon.proc.poll() is None:
            assert time.monotonic() < deadline, daemon.logs()
            time.sleep(rnd.uniform(0.001, 0.02))
        daemon.kill()
        progress.append(captured_line_count(home))
    assert sum(p < want[2] for p in progress) >= 3, progress
    assert progress == sorted(progress), progress
    _run_once(home)
    got = _fingerprint(home)
    assert got == want  # same (file, offset, line) set, same bytes, same count: no duplicates
    assert len(got[0]) == got[2]
    # The derivations interrupted by the kills are completed too.
    assert _sessions(home) == _sessions(reference)


def _sessions(home: Path) -> list[tuple[str, int, str | None]]:
    result = run_ctl("sessions", "--json", env=daemon_env(home))
    assert result.returncode == 0, result.stderr
    return sorted((s["session_id"], s["tools"], s["verdict"]) for s in json.loads(result.stdout))


def test_readers_run_while_the_daemon_writes(corpus: Path, tmp_path: Path) -> None:
    home = _home_with_corpus(corpus, tmp_path)
    daemon = DaemonProcess(home)
    env = daemon_env(home)
    wait_for(lambda: captured_line_count(home) > 0, timeout=60, interval=0.01)
    try:
        heads = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            readers = [
                subprocess.Popen(
                    [console_script("skillopsctl"), "status", "--json"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
                subprocess.Popen(
                    [console_script("skillopsctl"), "log", "--limit", "3", "--json"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
            ]
            outs = [p.communicate(timeout=60) for p in readers]
            for p, (_out, err) in zip(readers, outs, strict=True):
                assert p.returncode == 0, err
            heads.append(json.loads(outs[0][0])["head"])
        assert heads == sorted(heads) and heads[-1] > 0
    finally:
        assert daemon.stop() == 0, daemon.logs()


def test_systemd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout_claude_pair(home)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    env = daemon_env(home, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="200000")
    daemon = DaemonProcess(home, env=env)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            messages.extend(sock.recv(4096).decode().splitlines())
            if "READY=1" in messages and messages.count("WATCHDOG=1") >= 3:
                break
        assert "READY=1" in messages
        assert messages.count("WATCHDOG=1") >= 3
        assert any(m.startswith("STATUS=") for m in messages)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    while "STOPPING=1" not in messages:
        messages.extend(sock.recv(4096).decode().splitlines())
    sock.close()


def test_second_daemon_on_the_same_database_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = DaemonProcess(home)
    try:
        wait_for(lambda: "following" in first.logs())
        second = subprocess.run(
            [console_script("skillopsd")],
            env=daemon_env(home),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert "already running" in second.stderr and str(first.proc.pid) in second.stderr
    finally:
        assert first.stop() == 0, first.logs()


def test_bad_database_path_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script("skillopsd"), "--once", "--db", str(tmp_path / "no" / "x.db")],
        env=daemon_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_root_override_and_ingest_and_status_sources(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    parent, child = layout_claude_pair(elsewhere)
    env = daemon_env(home)
    result = subprocess.run(
        [console_script("skillopsd"), "--once", "--root", f"claude={elsewhere}/.claude/projects"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(run_ctl("status", "--json", env=env).stdout)
    claude = status["sources"]["claude"]
    assert claude["files"] == 2
    assert claude["lines"] == len(file_lines(parent)) + len(file_lines(child))
    assert claude["bytes"] == parent.stat().st_size + child.stat().st_size
    assert claude["lag_bytes"] == 0 and claude["errors"] == 0
    with open(parent, "ab") as fh:
        fh.write(b'{"sessionId":"x","pending":true}\n')
    status = json.loads(run_ctl("status", "--json", env=env).stdout)
    assert status["sources"]["claude"]["lag_bytes"] == len(b'{"sessionId":"x","pending":true}\n')
    # ingest: the fixtures folder, agents told apart by content
    ingest = run_ctl("ingest", str(FIXTURES), "--json", env=env)
    assert ingest.returncode == 0, ingest.stderr
    report = json.loads(ingest.stdout)
    assert report["files"] == 8 and report["skipped"] == []
    status = json.loads(run_ctl("status", "--json", env=env).stdout)
    assert status["sources"]["codex"]["files"] == 3
    again = json.loads(run_ctl("ingest", str(FIXTURES), "--json", env=env).stdout)
    assert again["lines"] == 0
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    bad = run_ctl("ingest", str(junk), env=env)
    assert bad.returncode == 2 and "no transcript recognised" in bad.stderr
    # --agent skips sniffing, but a file with no record of that agent is still refused
    forced = run_ctl("ingest", str(junk), "--agent", "claude", "--json", env=env)
    assert forced.returncode == 1 and "no line is a claude transcript record" in forced.stderr


def test_daemon_install_writes_the_unit(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path)}
    result = run_ctl("daemon", "install", env=env)
    assert result.returncode == 0, result.stderr
    unit = (config / "systemd" / "user" / "skillopsd.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert Path(exec_start.removeprefix("ExecStart=").split()[0]).name == "skillopsd"
    assert os.access(exec_start.removeprefix("ExecStart=").split()[0], os.X_OK)
    assert "systemctl --user enable --now skillopsd" in result.stdout
    assert "sudo" not in result.stdout
    # The unit in the repository is the same text, for a pip --user install.
    assert (REPO / "systemd" / "skillopsd.service").read_text() == unit_text()


def test_roots_created_after_start_are_followed(tmp_path: Path) -> None:
    """A fresh machine: no ~/.claude or ~/.codex yet; the first session appears later."""
    home = tmp_path / "home"
    home.mkdir()
    daemon = DaemonProcess(home, "--rescan-interval", "300")
    try:
        daemon.wait_for(lambda: "following" in daemon.logs(), timeout=30)
        parent, child = layout_claude_pair(home)  # mkdir -p ~/.claude/projects/... and write
        expected = len(file_lines(parent)) + len(file_lines(child))
        daemon.wait_for(lambda: captured_line_count(home) == expected, timeout=20)
        rollout = codex_path(home)
        shutil.copy(FIXTURES / "codex_skill.jsonl", rollout)
        expected += len(file_lines(rollout))
        daemon.wait_for(lambda: captured_line_count(home) == expected, timeout=20)
    finally:
        assert daemon.stop() == 0, daemon.logs()

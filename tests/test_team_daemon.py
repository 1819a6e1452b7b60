"""``skillopsd --sync-to``: a real daemon pushing its log to a real PostgreSQL as it captures."""

from __future__ import annotations

import json
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from skillopsd.events import Database

from ._capture_helpers import FIXTURES, claude_project
from ._daemon import DaemonProcess, captured_line_count, daemon_env, db_path
from ._postgres import Server, start_server
from .conftest import run_ctl
from .test_team_sync import (
    MARKER,
    SKILL_SESSION,
    _annotate,
    _counts,
    _database_files,
    _payloads,
    _tamper,
    _verified,
)

PASSWORD = "s3cret-pw-5521"


@pytest.fixture(scope="module")
def team_server() -> Iterator[Server]:
    yield from start_server()


def _local_head(home: Path) -> int:
    db = Database.open(db_path(home), create=False)
    try:
        row = db.conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(row[0])
    finally:
        db.close()


def _held(url: str) -> int:
    try:
        return sum(_counts(url).values())
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return -1


def _caught_up(home: Path, url: str) -> bool:
    head = _local_head(home) if db_path(home).exists() else 0
    return head > 0 and _held(url) == head


def _session(home: Path, name: str, marker: bytes = MARKER) -> Path:
    """A real Claude Code session (the skill fixture) with ``marker`` in its first prompt."""
    text = (FIXTURES / "claude_skill.jsonl").read_bytes()
    text = text.replace("Café Déjà Vu".encode(), "Café Déjà Vu ".encode() + marker)
    path = claude_project(home) / f"{name}.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text)
    tmp.rename(path)  # whole at once: the daemon never sees half a file
    return path


def _status(home: Path) -> dict[str, object]:
    done = run_ctl("status", "--json", env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict)
    return report


def _sync_state(home: Path) -> dict[str, object]:
    syncs = _status(home)["syncs"]
    assert isinstance(syncs, list) and len(syncs) == 1, syncs
    state = syncs[0]
    assert isinstance(state, dict)
    return state


def _lines(daemon: DaemonProcess, event: str) -> list[str]:
    return [line for line in daemon.logs().splitlines() if event in line]


@pytest.mark.slow
def test_live_lines_reach_the_server_without_message_text(
    tmp_path: Path, team_server: Server
) -> None:
    url = team_server.new_database()
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    daemon = DaemonProcess(home, "--sync-to", url)
    try:
        daemon.wait_for(lambda: _caught_up(home, url), timeout=60)
        # A session written while the daemon runs reaches the server within seconds.
        before = captured_line_count(home)
        _session(home, "5e1f0a53-0d0f-4c36-9d8b-7c2f1b0d9e11")
        started = time.monotonic()
        daemon.wait_for(lambda: captured_line_count(home) > before, timeout=30)
        daemon.wait_for(lambda: _caught_up(home, url), timeout=30)
        assert time.monotonic() - started < 20
        state = _sync_state(home)
        assert state["server"] == url and state["live"] is True
        assert state["content"] == "derived" and state["last_ok_at"]
        assert state["last_error"] is None
    finally:
        assert daemon.stop() == 0, daemon.logs()
    head = _local_head(home)
    assert _verified(url) == {str(state["machine"]): head}
    # The default sends no message text: checked on the server's rows and its files.
    rows = _payloads(url)
    assert any(t == "SpanDerived" and p is not None for t, _, p in rows)
    assert not any(p is not None and MARKER in p for _, _, p in rows)
    assert MARKER not in _database_files(team_server, url)
    assert len(_lines(daemon, "team sync failed")) == 0


@pytest.mark.slow
def test_once_with_sync_to_sends_everything_before_it_exits(
    tmp_path: Path, team_server: Server
) -> None:
    url = team_server.new_database()
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    daemon = DaemonProcess(home, "--once", "--sync-to", url, "--sync-content", "all")
    assert daemon.wait(120) == 0, daemon.logs()
    assert _caught_up(home, url)
    # --sync-content all: the marker does leave the machine (the control for the test above).
    assert any(p is not None and MARKER in p for _, _, p in _payloads(url))


def test_once_exits_non_zero_when_the_sync_did_not_complete(
    tmp_path: Path, team_server: Server
) -> None:
    """A cron job or CI step running ``skillopsd --once --sync-to`` learns that the server is
    missing its data: 2 when it could not be reached (as ``skillopsctl sync``), 1 when it
    refused the chain; one line naming why, and no retry promised."""
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    wrong = f"postgresql://skillops:{PASSWORD}@127.0.0.1:1/team"
    daemon = DaemonProcess(home, "--once", "--sync-to", wrong)
    assert daemon.wait(120) == 2, daemon.logs()
    last = daemon.logs().strip().splitlines()[-1]
    assert last.startswith("skillopsd: team sync did not complete: cannot connect"), last
    assert "retrying" not in daemon.logs() and PASSWORD not in daemon.logs()
    assert captured_line_count(home) > 0  # capture is kept either way
    # A log whose chain breaks: what came before the break is stored, exit 1.
    url = team_server.new_database()
    tampered = tmp_path / "tampered"
    path = db_path(tampered)
    path.parent.mkdir(parents=True)
    _annotate(path, 30, "bad")
    _tamper(path, 12)
    daemon = DaemonProcess(tampered, "--once", "--no-derive", "--sync-to", url)
    assert daemon.wait(120) == 1, daemon.logs()
    assert "team sync did not complete: refused: machine" in daemon.logs()
    assert sum(_counts(url).values()) == 11


def test_a_password_stays_out_of_the_process_list(tmp_path: Path, team_server: Server) -> None:
    """``--sync-to @FILE`` (and ``sync --to @FILE``, ``--team @FILE``) read the URL from a
    file: the daemon's command line, readable by every local user, holds no password. A
    password typed on the command line is warned about (review G20)."""
    url = team_server.new_database().replace("skillops@", f"skillops:{PASSWORD}@")
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    typed = DaemonProcess(home, "--once", "--sync-to", url)
    assert typed.wait(120) == 0, typed.logs()
    (warning,) = _lines(typed, "holds a password on the command line")
    assert "SKILLOPS_SYNC_URL" in warning and "@FILE" in warning and PASSWORD not in warning
    secret = tmp_path / "team.url"
    secret.write_text(f"\n{url}\n")
    secret.chmod(0o600)
    before = _local_head(home)
    _session(home, "11111111-2222-4333-8444-555555555555")
    daemon = DaemonProcess(home, "--sync-to", f"@{secret}")
    try:
        daemon.wait_for(lambda: _local_head(home) > before and _caught_up(home, url), timeout=60)
        # Read once it runs: right after the fork /proc shows an empty command line (the exec
        # has not happened yet), which made this test flaky.
        assert daemon.proc.poll() is None, daemon.logs()  # a daemon: it keeps running
        cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes()
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert PASSWORD.encode() not in cmdline and str(secret).encode() in cmdline
    assert "holds a password" not in daemon.logs() and PASSWORD not in daemon.logs()
    env = daemon_env(home)
    done = run_ctl("sync", "--to", f"@{secret}", "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["sent"] == 0, done.stderr
    view = run_ctl("--team", f"@{secret}", "sessions", "--json", env=env)
    assert view.returncode == 0 and json.loads(view.stdout), view.stderr
    missing = run_ctl("--team", f"@{tmp_path / 'nope'}", "sessions", env=env)
    assert missing.returncode == 2 and "cannot read the URL" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_server_down_and_back_while_capturing(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    daemon = DaemonProcess(home, "--sync-to", url)
    try:
        daemon.wait_for(lambda: _caught_up(home, url), timeout=60)
        team_server.stop()
        try:
            # Capture goes on while the server is away.
            for i in range(3):
                before = captured_line_count(home)
                _session(home, f"0000000{i}-aaaa-4bbb-8ccc-000000000000")
                daemon.wait_for(lambda b=before: captured_line_count(home) > b, timeout=30)
            daemon.wait_for(lambda: bool(_sync_state(home)["last_error"]), timeout=30)
            state = _sync_state(home)
            assert int(state["behind"]) > 0  # type: ignore[call-overload]
            assert "\n" not in str(state["last_error"])
        finally:
            team_server.start()
        # The backlog arrives (the backoff is short after a short outage).
        daemon.wait_for(lambda: _caught_up(home, url), timeout=90)
        daemon.wait_for(lambda: _sync_state(home)["last_error"] is None, timeout=10)
        assert _sync_state(home)["behind"] == 0
    finally:
        assert daemon.stop() == 0, daemon.logs()
    head = _local_head(home)
    assert _counts(url) == _verified(url) == {str(_sync_state(home)["machine"]): head}
    # One line when it failed, one when it recovered: no line per retry.
    assert len(_lines(daemon, "team sync failed")) == 1, daemon.logs()
    assert len(_lines(daemon, "team sync recovered")) == 1, daemon.logs()
    assert "Traceback" not in daemon.logs()


@pytest.mark.slow
def test_kill_9_mid_sync_then_restart(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    home = tmp_path / "home"
    path = db_path(home)
    path.parent.mkdir(parents=True)
    total = 4000
    _annotate(path, total, "k")
    args = ("--sync-to", url, "--sync-batch", "10")
    daemon = DaemonProcess(home, *args)
    daemon.wait_for(lambda: _held(url) >= 50, timeout=60, interval=0.01)
    daemon.kill()
    partial = _held(url)
    assert 0 < partial < total, "the sync ended before the daemon could be killed"
    again = DaemonProcess(home, *args)
    try:
        again.wait_for(lambda: _caught_up(home, url), timeout=120)
    finally:
        assert again.stop() == 0, again.logs()
    head = _local_head(home)
    assert head >= total
    assert _counts(url) == _verified(url) == {str(_sync_state(home)["machine"]): head}


@pytest.mark.slow
def test_a_wrong_url_is_one_line_and_capture_goes_on(tmp_path: Path, team_server: Server) -> None:
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    wrong = f"postgresql://skillops:{PASSWORD}@127.0.0.1:1/team"
    daemon = DaemonProcess(home, "--sync-to", wrong)
    try:
        daemon.wait_for(lambda: len(_lines(daemon, "team sync failed")) == 1, timeout=60)
        # More attempts (a SIGHUP retries at once) say nothing more.
        for _ in range(3):
            daemon.signal(signal.SIGHUP)
            time.sleep(0.5)
        before = captured_line_count(home)
        assert before > 0
        _session(home, "11111111-2222-4333-8444-555555555555")
        daemon.wait_for(lambda: captured_line_count(home) > before, timeout=30)
        state = _sync_state(home)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert len(_lines(daemon, "team sync failed")) == 1, daemon.logs()
    (line,) = _lines(daemon, "team sync failed")
    assert "cannot connect" in line and "127.0.0.1:1" in line
    assert state["last_ok_at"] is None and "cannot connect" in str(state["last_error"])
    assert state["behind"] == _local_head(home)
    text = run_ctl("status", env=daemon_env(home)).stdout
    assert "never synced" in text and "cannot connect" in text
    # The password is nowhere: not in the log, the status, or the database's files.
    assert PASSWORD not in daemon.logs() + text + json.dumps(state)
    for file in db_path(home).parent.iterdir():
        assert PASSWORD.encode() not in file.read_bytes(), file
    # A database the server does not have: the server's own words, one line.
    missing = team_server.url("no_such_database")
    other = tmp_path / "other"
    _session(other, SKILL_SESSION)
    daemon = DaemonProcess(other, "--sync-to", missing)
    try:
        daemon.wait_for(lambda: len(_lines(daemon, "team sync failed")) == 1, timeout=60)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert "no_such_database" in _lines(daemon, "team sync failed")[0]


@pytest.mark.slow
def test_a_refused_chain_is_said_once(tmp_path: Path, team_server: Server) -> None:
    url = team_server.new_database()
    home = tmp_path / "home"
    path = db_path(home)
    path.parent.mkdir(parents=True)
    _annotate(path, 60, "bad")
    _tamper(path, 25)
    daemon = DaemonProcess(home, "--sync-to", url)
    try:
        daemon.wait_for(lambda: len(_lines(daemon, "team sync refused")) == 1, timeout=60)
        for _ in range(3):  # SIGHUP retries at once: refused again, said no more
            daemon.signal(signal.SIGHUP)
            time.sleep(0.5)
        _session(home, SKILL_SESSION)
        daemon.wait_for(lambda: captured_line_count(home) > 0, timeout=30)
        state = _sync_state(home)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert len(_lines(daemon, "team sync refused")) == 1, daemon.logs()
    assert "chain breaks at position 25" in str(state["refused"])
    assert sum(_counts(url).values()) == 24
    assert "refused: machine" in run_ctl("status", env=daemon_env(home)).stdout


def test_bad_sync_urls_are_refused_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for url in ("http://example.com/x", "mysql://u:pw@h/x"):
        daemon = DaemonProcess(home, "--once", "--sync-to", url)
        assert daemon.wait(60) == 2
        assert "expected postgresql://" in daemon.logs() and "pw" not in daemon.logs()
        assert not db_path(home).exists()
    # An empty variable is no sync at all, as if unset.
    env = daemon_env(home, SKILLOPS_SYNC_URL="")
    daemon = DaemonProcess(home, "--once", env=env)
    assert daemon.wait(60) == 0, daemon.logs()
    assert "team sync" not in daemon.logs()


def test_daemon_install_keeps_the_url_out_of_the_unit(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config), "HOME": str(tmp_path)}
    url = f"postgresql://me:{PASSWORD}@db.example.com:5432/skillops"
    done = run_ctl("daemon", "install", "--sync-to", url, "--sync-content", "none", env=env)
    assert done.returncode == 0, done.stderr
    unit_path = config / "systemd" / "user" / "skillopsd.service"
    unit = unit_path.read_text()
    env_file = config / "skillops" / "skillopsd.env"
    assert PASSWORD not in unit and PASSWORD not in done.stdout + done.stderr
    assert f"EnvironmentFile={env_file}" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "--sync-content none" in exec_start
    assert env_file.read_text() == f"SKILLOPS_SYNC_URL='{url}'\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    # A URL systemd would read changed is refused, and nothing is written.
    for bad in ("postgresql://me:pa$word@db/x", "postgresql://me:it's@db/x"):
        refused = run_ctl("daemon", "install", "--force", "--sync-to", bad, env=env)
        assert refused.returncode != 0 and "percent-encode" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert unit_path.read_text() == unit
    # Installed again without --sync-to: the unit names no file and the file (a password) goes.
    done = run_ctl("daemon", "install", "--force", env=env)
    assert done.returncode == 0, done.stderr
    assert "EnvironmentFile" not in unit_path.read_text() and not env_file.exists()
    assert "sync-content" not in unit_path.read_text()


def test_status_of_a_machine_that_never_synced_shows_no_sync(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _session(home, SKILL_SESSION)
    daemon = DaemonProcess(home, "--once", "--no-derive")
    assert daemon.wait(60) == 0, daemon.logs()
    assert _status(home)["syncs"] == []
    assert "sync " not in run_ctl("status", env=daemon_env(home)).stdout

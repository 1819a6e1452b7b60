"""skillopsctl through click's runner and through the installed console script."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import PolicySet

from ._samples import every_event
from .conftest import console_script, run_ctl


def _seed(path: Path, rounds: int = 2) -> int:
    db = Database.open(path)
    log = EventLog(db)
    for r in range(rounds):
        log.append([NewEvent(f"s:{i % 3}", e) for i, e in enumerate(every_event(seed=r))])
    head = log.head()
    db.close()
    return head


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_status_json_shape(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "s.db"
    head = _seed(path)
    result = runner.invoke(cli, ["--db", str(path), "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["db"] == str(path)
    assert data["events"] == head and data["head"] == head
    assert data["size_bytes"] > 0
    assert data["projections"]["event_counts"] == {"checkpoint": 0, "lag": head, "version": 1}
    # A query catches projections up; status then shows no lag.
    assert runner.invoke(cli, ["--db", str(path), "rebuild"]).exit_code == 0
    data = json.loads(runner.invoke(cli, ["status", "--db", str(path), "--json"]).output)
    assert data["projections"]["event_counts"]["lag"] == 0


def test_log_filters_and_json(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "s.db"
    _seed(path)
    result = runner.invoke(cli, ["--db", str(path), "log", "--from", "3", "--limit", "4", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["position"] for r in rows] == [3, 4, 5, 6]
    result = runner.invoke(cli, ["--db", str(path), "log", "--type", "PolicySet", "--json"])
    rows = json.loads(result.output)
    assert len(rows) == 2 and all(r["payload"]["type"] == "PolicySet" for r in rows)
    text = runner.invoke(cli, ["--db", str(path), "log", "--type", "TranscriptLineCaptured"])
    assert text.exit_code == 0 and "TranscriptLineCaptured" in text.output
    bad = runner.invoke(cli, ["--db", str(path), "log", "--type", "Nope"])
    assert bad.exit_code == 2 and "Nope" in bad.output


def test_verify_reports_first_bad_position(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "v.db"
    _seed(path)
    ok = runner.invoke(cli, ["--db", str(path), "verify"])
    assert ok.exit_code == 0 and ok.output.startswith("ok:")
    raw = apsw.Connection(str(path))
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("UPDATE events SET data = x'00' WHERE position = 11")
    raw.close()
    bad = runner.invoke(cli, ["--db", str(path), "verify", "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False and report["bad_position"] == 11
    text = runner.invoke(cli, ["--db", str(path), "verify"])
    assert text.exit_code == 1 and "position 11:" in text.output


def test_rebuild_check(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "r.db"
    _seed(path)
    result = runner.invoke(cli, ["--db", str(path), "rebuild", "--check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["match"] is True
    assert report["digest"] == report["digest_before"] == report["digest_second"]


def test_rebuild_check_fails_on_a_divergent_projection(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "r.db"
    _seed(path)
    assert runner.invoke(cli, ["--db", str(path), "rebuild"]).exit_code == 0
    # Corrupt the incrementally maintained projection: rebuild must not match it.
    raw = apsw.Connection(str(path))
    raw.execute("DELETE FROM p_event_counts WHERE type = 'PolicySet'")
    raw.close()
    result = runner.invoke(cli, ["--db", str(path), "rebuild", "--check"])
    assert result.exit_code == 1
    assert "DIGESTS DIFFER" in result.output


@pytest.mark.parametrize("case", ["missing-dir", "text-file", "foreign-sqlite", "newer-schema"])
def test_bad_database_paths_exit_2_and_touch_nothing(
    tmp_path: Path, runner: CliRunner, case: str
) -> None:
    if case == "missing-dir":
        path = tmp_path / "nope" / "x.db"
    elif case == "text-file":
        path = tmp_path / "notes.txt"
        path.write_text("hello\n")
    elif case == "foreign-sqlite":
        path = tmp_path / "other.db"
        conn = apsw.Connection(str(path))
        conn.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        conn.close()
    else:
        path = tmp_path / "future.db"
        _seed(path, rounds=1)
        conn = apsw.Connection(str(path))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA user_version=99")
        conn.close()
    before = {p.name: _digest(p) for p in tmp_path.rglob("*") if p.is_file()}
    for command in (["status"], ["log"], ["verify"], ["rebuild"]):
        result = runner.invoke(cli, ["--db", str(path), *command])
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0]
    after = {p.name: _digest(p) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_database_exit_2(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "locked.db"
    _seed(path, rounds=1)
    path.chmod(0)
    result = runner.invoke(cli, ["--db", str(path), "status"])
    assert result.exit_code == 2 and str(path) in result.output


def test_default_database_created_on_first_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_DATA_HOME": "", "SKILLOPS_DB": ""}
    expected = home / ".local" / "share" / "skillops" / "skillops.db"
    # A read-only command never creates it (README, exit codes): review K2 found `sessions`
    # and `status` creating the default database, even under a HOME that did not exist.
    for args in (["sessions"], ["status", "--json"], ["skills"], ["verify"], ["serve"]):
        result = run_ctl(*args, env=env)
        assert result.returncode == 2 and result.stdout == "", (args, result.stdout)
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        assert f"{expected}: no database yet (start skillopsd" in result.stderr, result.stderr
        assert list(home.iterdir()) == [], args
    nowhere = tmp_path / "no" / "home"
    result = run_ctl("status", env={**env, "HOME": str(nowhere)})
    assert result.returncode == 2 and not (tmp_path / "no").exists(), result.stderr
    # A command that writes creates it, private, and the reading commands then read it.
    result = run_ctl("policy", "set", "gate", "min_sessions=3", env=env)
    assert result.returncode == 0, result.stderr
    result = run_ctl("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["db"] == str(expected) and data["events"] == 1
    assert (expected.parent.stat().st_mode & 0o777) == 0o700
    assert (expected.stat().st_mode & 0o777) == 0o600
    xdg = tmp_path / "xdg"
    result = run_ctl("sessions", env={**env, "XDG_DATA_HOME": str(xdg)})
    assert str(xdg / "skillops" / "skillops.db") in result.stderr and not xdg.exists()


def test_console_script_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    env = {"SKILLOPS_DB": str(path)}
    head = _seed(path)
    db = Database.open(path)
    EventLog(db).append([NewEvent("policy", PolicySet(name="verdict", values={"x": 0.8}))])
    db.close()
    status = run_ctl("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["head"] == head + 1
    log = run_ctl("log", "--from", str(head + 1), "--json", env=env)
    assert json.loads(log.stdout)[0]["payload"]["values"] == {"x": 0.8}
    assert run_ctl("verify", env=env).returncode == 0
    check = run_ctl("rebuild", "--check", env=env)
    assert check.returncode == 0 and "digests match" in check.stdout
    missing = run_ctl("--db", str(tmp_path / "no" / "x.db"), "status")
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
    # Logs go to stderr as JSON lines when it is not a terminal.
    verbose = run_ctl("-vv", "rebuild", env=env)
    assert verbose.returncode == 0
    records = [json.loads(line) for line in verbose.stderr.splitlines()]
    assert any(r["event"] == "projection caught up" for r in records)
    assert all({"level", "timestamp"} <= r.keys() for r in records)


def test_command_reference_is_current() -> None:
    """docs/cli.md is exactly what ``python -m skillopsd.cli._docs`` renders (regenerate it
    after changing a command or its help)."""
    from skillopsd.cli._docs import render

    from .conftest import REPO

    assert (REPO / "docs" / "cli.md").read_text() == render(), "run: python -m skillopsd.cli._docs"


def _doc_sections() -> dict[str, str]:
    import re

    from .conftest import REPO

    text = (REPO / "docs" / "cli.md").read_text()
    return {
        name: body
        for name, body in re.findall(r"^## (.+?)\n\n```\n(.*?)\n```\n", text, re.S | re.M)
    }


def test_command_reference_is_the_real_help() -> None:
    """Each section of docs/cli.md is, byte for byte, what ``--help`` prints on a terminal of
    100 columns (click keeps two free): every command of both programs."""
    from skillopsd.cli import cli
    from skillopsd.cli._app import load_commands
    from skillopsd.daemon import main as daemon_main

    load_commands()
    sections = _doc_sections()
    runner = CliRunner()
    for name, body in sections.items():
        program, *path = name.split()
        root = cli if program == "skillopsctl" else daemon_main
        result = runner.invoke(root, [*path, "--help"], prog_name=program, terminal_width=98)
        assert result.exit_code == 0, (name, result.output)
        assert result.output.rstrip("\n") == body, name
    assert len(sections) >= 30 and "skillopsctl skill diff" in sections


@pytest.mark.slow
def test_the_installed_programs_print_the_documented_help() -> None:
    """The console scripts themselves, on a 100-column terminal (a sample: the in-process test
    above covers every command; this one the terminal-width path click takes for real)."""
    differ = []
    sections = _doc_sections()
    sample = ["skillopsd", "skillopsctl", "skillopsctl log", "skillopsctl skill import"]
    for name, body in ((n, sections[n]) for n in sample):
        program, *path = name.split()
        result = subprocess.run(
            [console_script(program), *path, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "100"},
            timeout=60,
        )
        assert result.returncode == 0, (name, result.stderr)
        if result.stdout.rstrip("\n") != body:
            differ.append(name)
    assert differ == [], "regenerate: python -m skillopsd.cli._docs"


def test_processes_creating_one_database_at_once(tmp_path: Path) -> None:
    """Several first uses racing on a new database: all succeed, one schema.

    (The default location is created by the first command that writes, directory included:
    ``policy set`` races on the default one.)
    """
    import subprocess

    from .conftest import ctl_command

    for i in range(8):
        xdg = tmp_path / f"xdg{i}"
        env = {**os.environ, "XDG_DATA_HOME": str(xdg), "SKILLOPS_DB": ""}
        procs = [
            subprocess.Popen(
                [*ctl_command(), "policy", "set", "gate", f"min_sessions={3 + n}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for n in range(4)
        ]
        for proc in procs:
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
        status = run_ctl("status", "--json", env={"XDG_DATA_HOME": str(xdg), "SKILLOPS_DB": ""})
        assert json.loads(status.stdout)["events"] == 4, status.stderr


_NUMBER_OPTIONS = [
    ["sessions", "--limit"],
    ["log", "--limit"],
    ["log", "--from"],
]


@pytest.mark.parametrize("command", _NUMBER_OPTIONS, ids=" ".join)
@pytest.mark.parametrize("value", [str(2**63), str(10**30)])
def test_an_integer_option_beyond_64_bits_is_a_usage_error(
    tmp_path: Path, runner: CliRunner, command: list[str], value: str
) -> None:
    # SQLite binds 64-bit integers: a larger --limit or --from raised OverflowError.
    path = tmp_path / "s.db"
    _seed(path, rounds=1)
    result = runner.invoke(cli, ["--db", str(path), *command, value])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert value in result.output and "range" in result.output
    assert runner.invoke(cli, ["--db", str(path), *command, str(2**63 - 1)]).exit_code == 0


_DAEMON_NUMBERS = [
    *[("--retain", v) for v in ("nan", "inf", "1e300", "-1", "0")],
    *[("--derive-interval", v) for v in ("nan", "inf", "-inf")],
    *[("--rescan-interval", v) for v in ("nan", "inf")],
    *[("--max-line-bytes", v) for v in ("nan", str(2**70))],
]


@pytest.mark.parametrize(("option", "value"), _DAEMON_NUMBERS)
def test_a_daemon_number_it_cannot_use_is_a_usage_error(
    tmp_path: Path, option: str, value: str
) -> None:
    # --retain inf / 1e300 / nan passed click's range check and then raised at every start
    # (a timedelta of that many days); a NaN interval never came due.
    from skillopsd.daemon import main

    result = CliRunner().invoke(main, ["--db", str(tmp_path / "d.db"), "--once", option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert not (tmp_path / "d.db").exists()

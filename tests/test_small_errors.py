"""Small errors that are still errors, through the real programs: an unwritable --out, an
empty file taken for a database, a mistyped command, 64-bit ceilings in help, whether a
daemon runs (status), and which database the systemd unit will use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ._daemon import DaemonProcess, daemon_env, db_path
from .conftest import REPO, console_script


def ctl(
    *args: str, env: dict[str, str], code: int | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [console_script("skillopsctl"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    if code is not None:
        assert result.returncode == code, (args, result.stdout, result.stderr)
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return daemon_env(home)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr and err.count("\n") == 0, result.stderr
    return err


def test_export_to_a_missing_folder_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    ctl("policy", "set", "gate", "min_sessions=3", env=env, code=0)  # a database
    for out in (tmp_path / "missing" / "dir" / "x", Path("/proc/no/such/x")):
        err = one_line(ctl("export", "otlp", "--out", str(out), env=env, code=2))
        assert f"{out}: cannot write: No such file or directory" in err
        assert not out.parent.exists()


READ_ONLY = [
    ("sessions",),
    ("status",),
    ("skills",),
    ("annotations",),
    ("log",),
    ("verify",),
    ("lineage", "x"),
    ("skill", "show", "x"),
    ("skill", "versions", "x"),
    ("skill", "list"),
    ("session", "show", "abcdef"),
    ("export", "jsonl"),
    ("policy", "show"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
@pytest.mark.parametrize("how", ["--db", "env"])
def test_an_empty_file_is_not_a_database(
    env: dict[str, str], tmp_path: Path, command: tuple[str, ...], how: str
) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    args = ["--db", str(empty), *command] if how == "--db" else list(command)
    run_env = {**env, "SKILLOPS_DB": str(empty)} if how == "env" else env
    err = one_line(ctl(*args, env=run_env, code=2))
    assert f"{empty}: not a skillops database" in err
    assert empty.read_bytes() == b"" and not Path(f"{empty}-wal").exists()


def test_db_before_the_command_wins_over_the_environment(
    env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    other = tmp_path / "other.db"
    ctl("--db", str(other), "policy", "set", "gate", "min_sessions=3", env=env, code=0)
    err = one_line(
        ctl("--db", str(empty), "sessions", env={**env, "SKILLOPS_DB": str(other)}, code=2)
    )
    assert str(empty) in err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (("sesions",), "sessions"),
        (("skil", "show", "x"), "skill"),
        (("skill", "shwo", "x"), "show"),
        (("eval", "rnu", "x"), "run"),
        (("anotate",), "annotate"),
        (("linage", "x"), "lineage"),
    ],
)
def test_a_mistyped_command_suggests_the_one_meant(
    env: dict[str, str], typed: tuple[str, ...], meant: str
) -> None:
    result = ctl(*typed, env=env, code=2)
    assert f"Did you mean {meant!r}?" in result.stderr and "Traceback" not in result.stderr


def test_help_shows_no_64_bit_ceiling(env: dict[str, str]) -> None:
    assert "9223372036854775807" not in (REPO / "docs" / "cli.md").read_text()
    for command in (("log",), ("sessions",)):
        out = ctl(*command, "--help", env=env, code=0).stdout
        assert "9223372036854775807" not in out and "x>=1" in out
    err = ctl("log", "--limit", "99999999999999999999", env=env, code=2).stderr
    assert "is out of range (at most 9,223,372,036,854,775,807)" in err and "Traceback" not in err


@pytest.mark.slow
def test_status_says_whether_a_daemon_runs(env: dict[str, str]) -> None:
    home = Path(env["HOME"])
    daemon = DaemonProcess(home)
    try:
        daemon.wait_for(lambda: "following" in daemon.logs(), timeout=60)
        report = json.loads(ctl("status", "--json", env=env, code=0).stdout)
        assert report["daemon"]["running"] is True
        assert report["daemon"]["pid"] == daemon.proc.pid
        assert report["daemon"]["since"].endswith("Z")
        text = ctl("status", "--utc", env=env, code=0).stdout
        assert f"daemon    running (pid {daemon.proc.pid}, since " in text and "UTC" in text
    finally:
        assert daemon.stop() == 0
    report = json.loads(ctl("status", "--json", env=env, code=0).stdout)
    assert report["daemon"] == {
        "running": False,
        "pid": None,
        "since": None,
        "last_capture": report["daemon"]["last_capture"],
    }
    assert "daemon    not running" in ctl("status", env=env, code=0).stdout
    assert db_path(home).exists()


def test_daemon_install_pins_the_database(env: dict[str, str], tmp_path: Path) -> None:
    home = Path(env["HOME"])
    config = tmp_path / "config"
    run_env = {**env, "XDG_CONFIG_HOME": str(config), "XDG_DATA_HOME": str(tmp_path / "data")}
    out = ctl("daemon", "install", env=run_env, code=0).stdout
    expected = tmp_path / "data" / "skillops" / "skillops.db"
    assert f"the service will use the database {expected}" in out
    unit = (config / "systemd" / "user" / "skillopsd.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f" --db {expected}")
    # $SKILLOPS_DB, like --db, is what the unit names.
    chosen = home / "chosen.db"
    out = ctl("daemon", "install", "--force", env={**run_env, "SKILLOPS_DB": str(chosen)}, code=0)
    assert f"the service will use the database {chosen}" in out.stdout
    assert f"--db {chosen}" in (config / "systemd" / "user" / "skillopsd.service").read_text()

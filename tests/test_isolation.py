"""The suite never touches a real user's data (tests/_isolation.py, wired in conftest.py).

The ``probe_*`` tests do what a careless test would: start ``skillopsd --once`` and
``skillopsctl`` with whatever environment the test has, and write where the defaults point. The
outer tests run them in a nested pytest whose environment is a sentinel user (HOME, XDG
directories, ``SKILLOPS_DB`` and every agent's home override pointing at transcripts and
databases of its own) and check the sentinel afterwards, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skillopsd._paths import default_db_path
from skillopsd.events import Database

from ._isolation import CLEARED, SUITE_SWITCHES, fingerprint
from .conftest import REPO, console_script, run_ctl

SESSION = "5e7c1b2a-0000-4000-8000-00000000c0de"
VANDAL_ENV = "ISOLATION_PROBE_VANDALISE"


def _transcript(native: str) -> str:
    rows = [
        {
            "type": "user",
            "sessionId": native,
            "uuid": "u1",
            "timestamp": "2026-06-01T10:00:00.000Z",
            "cwd": "/work/p",
            "message": {"role": "user", "content": "list the files"},
        },
        {
            "type": "assistant",
            "sessionId": native,
            "uuid": "a1",
            "parentUuid": "u1",
            "timestamp": "2026-06-01T10:00:01.000Z",
            "message": {
                "id": "m1",
                "role": "assistant",
                "model": "claude-x",
                "content": [{"type": "text", "text": "done"}],
                "usage": {"input_tokens": 3, "output_tokens": 2},
            },
        },
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def _claude_file(projects: Path, native: str) -> Path:
    path = projects / "-work-p" / f"{native}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_transcript(native))
    return path


def test_probe_environment_points_nowhere_real(isolated_home: Path) -> None:
    assert Path(os.environ["HOME"]) == isolated_home and Path.home() == isolated_home
    assert not set(CLEARED) & set(os.environ)
    assert not [k for k in os.environ if k.startswith("SKILLOPS_") and k not in SUITE_SWITCHES]
    assert default_db_path().is_relative_to(isolated_home)


@pytest.mark.slow
def test_probe_daemon_and_ctl_with_the_inherited_environment(isolated_home: Path) -> None:
    _claude_file(isolated_home / ".claude" / "projects", SESSION)
    subprocess.run([console_script("skillopsd"), "--once"], check=True, timeout=120)
    (row,) = json.loads(run_ctl("sessions", "--json").stdout)
    assert row["native_session_id"] == SESSION
    assert (isolated_home / ".local" / "share" / "skillops" / "skillops.db").is_file()


def test_probe_vandal_writes_where_it_is_told() -> None:
    """Only in the nested run below: write into the sentinel's data, as a leaking test would."""
    target = os.environ.get(VANDAL_ENV)
    if not target:
        pytest.skip("runs only inside test_the_home_check_fails_a_run_that_writes_real_data")
    (Path(target) / "skillops.db").write_bytes(b"overwritten by a test")


class Sentinel:
    """A user's environment with data everywhere skillops or an agent could look."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.data = self.home / ".local" / "share" / "skillops"
        self.xdg_data = root / "xdg-data"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in CLEARED and not k.startswith(("SKILLOPS_", "PYTEST_"))
        }
        self.env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.xdg_data),
            XDG_CONFIG_HOME=str(root / "xdg-config"),
            XDG_STATE_HOME=str(root / "xdg-state"),
            SKILLOPS_DB=str(root / "db" / "skillops.db"),
            CLAUDE_CONFIG_DIR=str(root / "claude-config"),
            CODEX_HOME=str(root / "codex-home"),
            COPILOT_HOME=str(root / "copilot-home"),
            GEMINI_CLI_HOME=str(root / "gemini-home"),
        )
        _claude_file(self.home / ".claude" / "projects", "5e7c1b2a-0000-4000-8000-0000000000a1")
        _claude_file(root / "claude-config" / "projects", "5e7c1b2a-0000-4000-8000-0000000000a2")
        for db in (
            self.data / "skillops.db",
            self.xdg_data / "skillops" / "skillops.db",
            root / "db" / "skillops.db",
        ):
            db.parent.mkdir(parents=True, exist_ok=True)
            Database.open(db).close()
        self.before = self.state()

    def state(self) -> dict[str, str]:
        return fingerprint([self.root])

    def pytest(self, tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"),
                *("--basetemp", str(tmp_path / "nested"), f"{REPO}/tests/test_isolation.py"),
                *args,
            ],
            env={**self.env, **extra},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.mark.slow
def test_a_run_leaves_a_real_users_data_alone(tmp_path: Path) -> None:
    sentinel = Sentinel(tmp_path / "user")
    done = sentinel.pytest(tmp_path, "-k", "probe and not vandal")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout, done.stdout[-2000:]
    assert sentinel.state() == sentinel.before


@pytest.mark.slow
def test_the_home_check_fails_a_run_that_writes_real_data(tmp_path: Path) -> None:
    sentinel = Sentinel(tmp_path / "user")
    done = sentinel.pytest(tmp_path, "-k", "vandal", **{VANDAL_ENV: str(sentinel.data)})
    assert done.returncode == 1, done.stdout[-3000:]
    assert "the test run changed a real user's skillops data" in done.stdout
    assert f"changed {sentinel.data / 'skillops.db'}" in done.stdout


def test_hypothesis_profile_follows_ci() -> None:
    """CI (CI=true / SKILLOPS_REQUIRE_SHARED=1) draws the same examples every run; a developer's
    run draws new ones."""
    from hypothesis import settings

    from ._shared import strict

    assert settings.default.derandomize is strict()
    assert settings.default.deadline is None and settings.default.print_blob
    assert (settings.default.database is None) is strict()

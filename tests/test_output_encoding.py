"""A terminal whose encoding cannot write every character (a Latin-1 or EUC locale, Windows'
cp1252 when output is redirected) gets every table with stand-ins and JSON as UTF-8, never a
traceback (review K1): the real ``skillopsctl`` on a real ``skillopsd --once`` database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ._daemon import daemon_env
from ._export_helpers import run_once
from .conftest import ctl_command
from .test_verdict_endings import Claude, _sid

pytestmark = pytest.mark.slow

_TITLE = "Réparer le test ✓ 日本語 — vite"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("encoding")
    (
        Claude(_sid(1))
        .prompt(_TITLE)
        .call("t1", "Bash", command="go test ./...")
        .result("t1", "ok  \tpkg\t0.1s")
        .call("t2", "Bash", command="go vet ./...")
        .result("t2", "Exit code 1\nvet: bad", error=True)
        .say("Vet still fails → I stopped here…")
        .write(home)
    )
    run_once(home)
    return home


def _ctl(home: Path, encoding: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**daemon_env(home), "PYTHONIOENCODING": encoding, "COLUMNS": "100"}
    return subprocess.run([*ctl_command(), *args], capture_output=True, env=env, timeout=60)


_COMMANDS = (
    ("sessions",),
    ("session", "show", "4e1f0000"),
    ("skills",),
    ("usage", "daily"),
    ("status",),
    ("sessions", "--help"),
)


# (Not "ascii": click takes an ASCII stream for a misconfigured one and writes UTF-8 to it.)
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "euc-jp"])
@pytest.mark.parametrize("args", _COMMANDS, ids=lambda a: " ".join(a))
def test_tables_fit_the_terminals_encoding(home: Path, encoding: str, args: tuple[str]) -> None:
    done = _ctl(home, encoding, *args)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in done.stderr
    done.stdout.decode(encoding)  # every byte is the terminal's own


def test_call_marks_have_ascii_stand_ins(home: Path) -> None:
    shown = _ctl(home, "latin-1", "sessions").stdout.decode("latin-1")
    assert "1+ 1x" in shown
    assert "1✓ 1✗" in _ctl(home, "utf-8", "sessions").stdout.decode()


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "euc-jp", "ascii"])
@pytest.mark.parametrize(
    "args", [("sessions", "--json"), ("session", "show", "4e1f0000", "--json")], ids=" ".join
)
def test_json_is_utf8_whatever_the_terminal(home: Path, encoding: str, args: tuple[str]) -> None:
    done = _ctl(home, encoding, *args)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert json.loads(done.stdout.decode("utf-8")) == json.loads(_ctl(home, "utf-8", *args).stdout)
    assert _TITLE.encode() in done.stdout or _TITLE.split(" ✓")[0].encode() in done.stdout

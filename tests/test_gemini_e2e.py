"""Gemini CLI through the real ``skillopsd`` and ``skillopsctl``: a HOME holding Claude Code
and Gemini sessions side by side, ``sessions --agent``, ``session show``, ``status``,
``ingest --agent gemini`` and ``forget --source`` of a document."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ._agents import gemini_files, layout_gemini
from ._capture_helpers import layout_claude_pair
from ._daemon import daemon_env
from .conftest import console_script, run_ctl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME with every Gemini session of the corpus and a Claude Code session, backfilled."""
    home = tmp_path_factory.mktemp("home")
    layout_claude_pair(home)
    for source in gemini_files():
        layout_gemini(home, source)
    subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=daemon_env(home),
        check=True,
        capture_output=True,
        timeout=180,
    )
    return home


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_ctl(*args, env=daemon_env(home))
    assert result.returncode == 0, result.stderr
    return result


def test_gemini_sessions_show_beside_claude_ones(home: Path) -> None:
    listed = json.loads(_ctl(home, "sessions", "--json", "--limit", "100").stdout)
    rows = listed["sessions"] if isinstance(listed, dict) else listed
    agents = {r["agent"] for r in rows}
    assert agents == {"claude", "gemini"}
    gemini = json.loads(_ctl(home, "sessions", "--agent", "gemini", "--json").stdout)
    gemini_rows = gemini["sessions"] if isinstance(gemini, dict) else gemini
    # Every corpus file but the one holding a lone warning is a session.
    assert {r["native_session_id"] for r in gemini_rows} == {
        f.stem for f in gemini_files() if not f.name.startswith("29eb990e")
    }


def test_session_show_and_status_need_no_special_case(home: Path) -> None:
    shown = _ctl(home, "session", "show", "cdb14b05-cceb-4354-a9d8-8c9182ece8bf").stdout
    assert "gemini" in shown and "run_shell_command" in shown
    assert "1,658,567" in shown  # input tokens, cached input included
    status = json.loads(_ctl(home, "status", "--json").stdout)["sources"]["gemini"]
    assert status["files"] == len(gemini_files()) and status["errors"] == 0
    assert status["lag_bytes"] == 0


def test_ingest_agent_gemini_reads_a_document_and_refuses_what_is_not_one(
    tmp_path: Path,
) -> None:
    env = {"SKILLOPS_DB": str(tmp_path / "db" / "skillops.db")}
    (tmp_path / "db").mkdir()
    source = next(f for f in gemini_files() if f.name.startswith("18f475c0"))
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    done = run_ctl("ingest", "--agent", "gemini", "--json", str(copy), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["files"], report["sessions_derived"], report["errors"]) == (1, 1, 0)
    sniffed = run_ctl("ingest", "--json", str(tmp_path), env=env)  # a folder, sniffed
    assert sniffed.returncode == 0, sniffed.stderr
    assert json.loads(sniffed.stdout)["lines"] == 0  # the same document: nothing new
    other = tmp_path / "other.json"
    other.write_text('{"name": "not a transcript"}')
    refused = run_ctl("ingest", "--agent", "gemini", str(other), env=env)
    assert refused.returncode != 0 and "no line is a gemini transcript record" in refused.stderr


def test_forget_source_finds_a_documents_lines(home: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "home"
    shutil.copytree(home, scratch, symlinks=True)
    target = next(p for p in (scratch / ".gemini").rglob("*faff42ab.json"))
    captured = next(p for p in (home / ".gemini").rglob("*faff42ab.json"))
    done = run_ctl(
        "forget", "--source", str(captured), "--reason", "test", "--json", env=daemon_env(scratch)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lines"] > 0
    assert target.exists()

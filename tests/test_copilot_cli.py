"""Copilot CLI sessions through the real programs: a daemon following a HOME with every agent,
and ``status``, ``sessions --agent``, ``session show`` and ``ingest --agent`` on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ._capture_helpers import FIXTURES, codex_path, layout_claude_pair
from ._daemon import DaemonProcess, daemon_env
from .conftest import SHARED, run_ctl

COPILOT = SHARED / "corpus" / "agents" / "copilot"
RESUMED = "e07fc822-e277-4d5d-898a-1b91eedea7b6"  # shutdown, resume, subagents, denials
OPEN = "c3f091b3-1a1f-435f-8acb-6c7520106212"  # taken mid-session, an abort, a failed view


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    layout_claude_pair(home)
    shutil.copy(FIXTURES / "codex_skill.jsonl", codex_path(home))
    state = home / ".copilot" / "session-state"
    (state / RESUMED).mkdir(parents=True)
    shutil.copy(COPILOT / f"{RESUMED}.jsonl", state / RESUMED / "events.jsonl")
    shutil.copy(COPILOT / f"{OPEN}.jsonl", state / f"{OPEN}.jsonl")  # the older flat layout
    return home


def _json(env: dict[str, str], *args: str) -> object:
    result = run_ctl(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_daemon_shows_every_agent_side_by_side(tmp_path: Path) -> None:
    home = _home(tmp_path)
    daemon = DaemonProcess(home, "--once")
    assert daemon.wait(120) == 0, daemon.logs()
    env = daemon_env(home)

    sessions = _json(env, "sessions")
    assert isinstance(sessions, list)
    assert sorted(s["agent"] for s in sessions) == ["claude", "codex", "copilot", "copilot"]

    copilot = _json(env, "sessions", "--agent", "copilot")
    assert isinstance(copilot, list)
    by_native = {s["native_session_id"]: s for s in copilot}
    assert set(by_native) == {RESUMED, OPEN}
    resumed = by_native[RESUMED]
    assert resumed["outcomes"] == {"success": 193, "failure": 8, "blocked": 4, "unknown": 1}
    assert resumed["tokens"]["output"] == 167840 and resumed["tokens"]["input"] is None
    assert by_native[OPEN]["outcomes"]["failure"] == 2

    status = _json(env, "status")
    assert isinstance(status, dict)
    assert status["sources"]["copilot"]["files"] == 2
    assert status["sources"]["copilot"]["errors"] == 0

    show = run_ctl("session", "show", RESUMED[:8], env=env)
    assert show.returncode == 0, show.stderr
    assert f"copilot {RESUMED}" in show.stdout
    assert "subagent car" in show.stdout and "TOOL task" in show.stdout


def test_ingest_agent_copilot(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    path = COPILOT / f"{OPEN}.jsonl"
    report = _json({}, "--db", db, "ingest", "--agent", "copilot", str(path))
    assert isinstance(report, dict)
    assert report["files"] == 1 and report["errors"] == 0 and report["sessions_derived"] == 1
    (session,) = _json({}, "--db", db, "sessions", "--agent", "copilot")  # type: ignore[misc]
    assert session["native_session_id"] == OPEN and session["tools"] == 61
    # Told from its content, without --agent, too.
    other = str(tmp_path / "t.db")
    assert _json({}, "--db", other, "ingest", str(path))["files"] == 1  # type: ignore[index]
    refused = run_ctl(
        "--db", db, "ingest", "--agent", "copilot", str(FIXTURES / "codex_skill.jsonl")
    )
    assert refused.returncode != 0
    assert "no line is a copilot transcript record" in refused.stderr

"""Copilot CLI sessions through the real programs: a daemon following a HOME with every agent,
and ``status``, ``sessions --agent``, ``session show`` and ``ingest --agent`` on them."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from ._capture_helpers import FIXTURES, codex_path, layout_claude_pair
from ._daemon import DaemonProcess, daemon_env
from .conftest import SHARED, run_ctl

COPILOT = SHARED / "corpus" / "agents" / "copilot"
RESUMED = "e07fc822-e277-4d5d-898a-1b91eedea7b6"  # shutdown, resume, subagents, denials
OPEN = "c3f091b3-1a1f-435f-8acb-6c7520106212"  # taken mid-session, an abort, a failed view
LEGACY = "06141331-92e8-4e9e-8bbb-9b7a729eb01a"  # October 2025 single document


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    layout_claude_pair(home)
    shutil.copy(FIXTURES / "codex_skill.jsonl", codex_path(home))
    state = home / ".copilot" / "session-state"
    (state / RESUMED).mkdir(parents=True)
    shutil.copy(COPILOT / f"{RESUMED}.jsonl", state / RESUMED / "events.jsonl")
    shutil.copy(COPILOT / f"{OPEN}.jsonl", state / f"{OPEN}.jsonl")  # the older flat layout
    legacy = home / ".copilot" / "history-session-state"
    legacy.mkdir()
    shutil.copy(COPILOT / f"{LEGACY}.json", legacy / f"{LEGACY}.json")
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
    assert sorted(s["agent"] for s in sessions) == ["claude", "codex"] + ["copilot"] * 3

    copilot = _json(env, "sessions", "--agent", "copilot")
    assert isinstance(copilot, list)
    by_native = {s["native_session_id"]: s for s in copilot}
    assert set(by_native) == {RESUMED, OPEN, LEGACY}
    # A piped cargo test whose output says it did not compile, a piped clippy whose grep
    # printed nothing (unknown); Pester runs whose summary says "Failed: 1" (test_derive_copilot).
    assert by_native[LEGACY]["outcomes"] == {
        "success": 56,
        "failure": 2,
        "blocked": 0,
        "unknown": 1,
    }
    resumed = by_native[RESUMED]
    assert resumed["outcomes"] == {"success": 189, "failure": 11, "blocked": 4, "unknown": 2}
    assert resumed["tokens"]["output"] == 167840 and resumed["tokens"]["input"] is None
    assert by_native[OPEN]["outcomes"]["failure"] == 2

    status = _json(env, "status")
    assert isinstance(status, dict)
    assert status["sources"]["copilot"]["files"] == 3
    assert status["sources"]["copilot"]["errors"] == 0

    show = run_ctl("session", "show", RESUMED[:8], env=env)
    assert show.returncode == 0, show.stderr
    assert f"copilot {RESUMED}" in show.stdout
    assert "subagent car" in show.stdout and "TOOL task" in show.stdout

    # Every Copilot row says what its token figures cover; Claude and Codex rows need not.
    notes = {s["native_session_id"]: s["tokens"]["note"] for s in sessions}
    assert "1 of 2 runs have no session.shutdown" in notes[RESUMED]
    assert "1 of 1 runs have no session.shutdown" in notes[OPEN]
    assert "legacy history JSON records no token counts" in notes[LEGACY]
    assert [n for n in notes.values() if n is None] == [None, None]
    assert "(output only, per response: Copilot reports input and cache" in show.stdout
    assert "runs have no session.shutdown" in show.stdout.replace("\n          ", " ")
    table = run_ctl("sessions", env={**env, "COLUMNS": "200"}).stdout
    ours = {s["session_id"][:8]: s["native_session_id"] for s in sessions}
    lines = {ours[line.split()[3]]: line for line in table.splitlines() if " copilot " in line}
    marked = {native for native, line in lines.items() if re.search(r" \d[\d.,]*[kMG]?\* ", line)}
    # A figure is marked; the legacy session has none to mark.
    assert marked == {RESUMED, OPEN}
    assert "(* tokens: not every response's own usage; session show says" in table


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
    # A legacy document, told from its content.
    legacy = _json({}, "--db", other, "ingest", str(COPILOT / f"{LEGACY}.json"))
    assert legacy["files"] == 1 and legacy["errors"] == 0  # type: ignore[index]
    agents = {s["native_session_id"]: s["agent"] for s in _json({}, "--db", other, "sessions")}  # type: ignore[attr-defined, union-attr]
    assert agents == {OPEN: "copilot", LEGACY: "copilot"}
    refused = run_ctl(
        "--db", db, "ingest", "--agent", "copilot", str(FIXTURES / "codex_skill.jsonl")
    )
    assert refused.returncode != 0
    assert "no line is a copilot transcript record" in refused.stderr


def test_a_live_copilot_session_in_a_new_folder_is_followed(tmp_path: Path) -> None:
    """The CLI makes a folder per session after the daemon started; the session grows."""
    home = tmp_path / "home"
    (home / ".copilot" / "session-state").mkdir(parents=True)
    source = COPILOT / "96ef38f0-9d09-45c3-8124-6448c36090ed.jsonl"
    lines = source.read_bytes().splitlines(keepends=True)
    native = source.stem
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--derive-interval", "0.2", env=env)

    def shown() -> tuple[int, int] | None:
        result = run_ctl("sessions", "--agent", "copilot", "--json", env=env)
        rows = json.loads(result.stdout) if result.returncode == 0 else []
        row = next((r for r in rows if r["native_session_id"] == native), None)
        return None if row is None else (row["tools"], row["tokens"]["output"])

    def until(want: tuple[int, int]) -> None:
        deadline = time.monotonic() + 30
        while shown() != want:
            assert time.monotonic() < deadline, (shown(), want, daemon.logs()[-3000:])
            time.sleep(0.1)

    try:
        folder = home / ".copilot" / "session-state" / native
        folder.mkdir()
        half = 18  # through the first response and its four calls
        with open(folder / "events.jsonl", "wb") as fh:
            fh.writelines(lines[:half])
            fh.flush()
            until((4, 311))
            fh.writelines(lines[half:])
        until((11, 2848))
    finally:
        assert daemon.stop() == 0, daemon.logs()

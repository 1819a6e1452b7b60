"""Verdict reasons end to end: a real ``skillopsd --once`` derives them, the real
``skillopsctl`` shows them (``sessions --json``, ``session show``, the OTLP root span), a
verdict ``PolicySet`` recomputes them, and a session still being written reads ``running``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skillopsd.events import Database
from skillopsd.export._otlp import encode_session
from skillopsd.export._traces import SessionTrace
from skillopsd.projections.session_views import list_sessions, spans_of

from ._daemon import daemon_env, db_path
from ._export_helpers import run_once
from .conftest import run_ctl
from .test_verdict_endings import Claude, _sid

pytestmark = pytest.mark.slow


def _failing(sid: str) -> Claude:
    return (
        Claude(sid)
        .prompt("make it pass")
        .call("t1", "Bash", command="cd /w/repo && GOOS=windows go test ./... 2>&1 | tail -5")
        .result("t1", "Exit code 1\n--- FAIL: TestPath", error=True)
        .call("t2", "TodoWrite", todos=[])
        .result("t2", "Todos have been modified successfully")
        .say("Still failing on Windows paths.")
    )


def _live(sid: str) -> Claude:
    """A session whose last line is seconds old and ends waiting for a command."""
    session = Claude(sid).prompt("deploy").call("t1", "Bash", command="make deploy")
    now = datetime.now(UTC)
    for i, row in enumerate(session.rows):
        stamp = now - timedelta(seconds=len(session.rows) - i)
        row["timestamp"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return session


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("verdict-e2e")
    _failing(_sid(101)).write(home)
    _live(_sid(102)).write(home)
    (
        Claude(_sid(103))
        .prompt("commit")
        .call("t1", "Bash", command="git commit -am x")
        .result("t1", "[main 1a2b3c] x")
        .say("Committed.")
        .write(home)
    )
    run_once(home)
    return home


def _ctl(home: Path, *args: str) -> Any:
    done = run_ctl("--db", str(db_path(home)), *args, env=daemon_env(home))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def _by_native(home: Path) -> dict[str, dict[str, Any]]:
    return {s["native_session_id"]: s for s in _ctl(home, "sessions", "--json")}


def test_reasons_are_shown_exported_and_recomputed(home: Path) -> None:
    sessions = _by_native(home)
    failing = sessions[_sid(101)]
    assert failing["verdict"] == "failure"
    assert failing["verdict_reason"] == (
        "failure: GOOS=windows go test ./... | tail -5 failed in the last turn, nothing of the"
        " same kind passed after it"
    )
    shown = _ctl(home, "session", "show", failing["session_id"], "--json")
    by_id = {s["span_id"]: s for s in shown["spans"]}
    assert shown["session"]["verdict_spans"] == failing["verdict_spans"]
    [decider] = failing["verdict_spans"]
    assert by_id[decider]["attributes"]["gen_ai.tool.call.id"] == "t1"
    text = _ctl(home, "session", "show", failing["session_id"])
    assert "why       GOOS=windows go test ./... | tail -5 failed in the last turn" in text
    # Wrapped to the width, never cut: its end says what passed after it (review K7).
    narrow = run_ctl(
        "--db",
        str(db_path(home)),
        "session",
        "show",
        failing["session_id"],
        env={**daemon_env(home), "COLUMNS": "80"},
    ).stdout
    why = narrow[narrow.index("why       ") : narrow.index("turns     ")]
    assert " ".join(why.split()).endswith("nothing of the same kind passed after it")
    assert all(len(line) <= 80 for line in narrow.splitlines())
    [marked] = [line for line in text.splitlines() if line.endswith("◀ verdict")]
    assert "✗ TOOL Bash" in marked
    assert sessions[_sid(103)]["verdict"] == "success"
    assert sessions[_sid(103)]["verdict_reason"] is None

    # The OTLP session root carries the reason and its spans.
    db = Database.open(db_path(home))
    try:
        with db.read() as conn:
            view = next(s for s in list_sessions(conn) if s.native_session_id == _sid(101))
            trace = SessionTrace(
                session=view,
                spans=spans_of(conn, view.session_id),
                annotations=[],
                evals=[],
                position=1,
            )
    finally:
        db.close()
    root = encode_session(trace)[0]
    attributes = {kv.key: kv.value for kv in root.attributes}
    assert attributes["skillops.verdict.reason"].string_value == failing["verdict_reason"]
    spans = [v.string_value for v in attributes["skillops.verdict.spans"].array_value.values]
    assert spans == failing["verdict_spans"]
    assert root.status.message == failing["verdict_reason"]

    # A verdict PolicySet recomputes verdicts and reasons; rebuilding gives the same state.
    _ctl(home, "policy", "set", "verdict", "unresolved_min=2")
    after = _by_native(home)[_sid(101)]
    # Still a failure, now for another reason: every call that decides failed (the TodoWrite
    # after it is bookkeeping and counts for nothing).
    assert after["verdict_reason"] == "failure: 1 of 1 calls failed"
    assert after["verdict_spans"] == failing["verdict_spans"]
    _ctl(home, "policy", "set", "verdict", "failure_share=1.0")
    after = _by_native(home)[_sid(101)]
    assert after["verdict"] == "success"
    assert after["verdict_reason"] is None and after["verdict_spans"] == []
    _ctl(home, "policy", "set", "verdict", "unresolved_min=1", "failure_share=0.8")
    assert _by_native(home)[_sid(101)]["verdict_reason"] == failing["verdict_reason"]
    check = run_ctl("--db", str(db_path(home)), "rebuild", "--check", env=daemon_env(home))
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_session_still_being_written_reads_running(home: Path) -> None:
    live = _by_native(home)[_sid(102)]
    assert live["verdict"] == "running"
    assert live["verdict_reason"].startswith("running: still being written (unfinished so far:")
    listed = _ctl(home, "sessions", "--verdict", "running", "--json")
    assert [s["native_session_id"] for s in listed] == [_sid(102)]
    assert _ctl(home, "sessions", "--verdict", "unfinished", "--json") == []
    text = _ctl(home, "session", "show", live["session_id"])
    assert "verdict   running" in text
    # What is stored is the judgement; "running" is only how it is shown.
    db = Database.open(db_path(home))
    try:
        with db.read() as conn:
            stored = conn.execute(
                "SELECT verdict FROM p_sessions WHERE native_session_id = ?", (_sid(102),)
            ).fetchone()
    finally:
        db.close()
    assert stored == ("unfinished",)


def test_no_verdict_says_why_and_what_counts_instead(tmp_path: Path) -> None:
    """A "-" verdict must not read as "not looked at" (review K11)."""
    home = tmp_path / "home"
    Claude(_sid(111)).prompt("what does this repo do?").say("It syncs git mirrors.").write(home)
    run_once(home)
    [session] = [s for s in _ctl(home, "sessions", "--json")]
    assert session["verdict"] is None and session["verdict_reason"] is None
    text = _ctl(home, "session", "show", session["session_id"])
    why = " ".join(text[text.index("why       ") : text.index("turns     ")].split())
    assert why.startswith("why no verdict: no call has an outcome to judge the session by")
    assert f"skillopsctl annotate {session['session_id'][:8]} --label good|bad" in why

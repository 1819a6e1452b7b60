"""Forgetting end to end: ``skillopsctl forget`` and ``skillopsd --retain`` on a database a real
``skillopsd --once`` built from real transcripts; the erased bytes are gone from the file and
its WAL, the chain verifies, projections replay to the same state, the rest is untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from skillopsd.derive import derive_session, session_id
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import (
    AnnotationAdded,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from skillopsd.forgetting import execute, plan_session, resolve_session

from ._capture_helpers import (
    CLAUDE_AGENT,
    CLAUDE_SESSION,
    FIXTURES,
    claude_project,
    codex_path,
    layout_claude_pair,
)
from ._daemon import DaemonProcess, daemon_env, db_path
from .conftest import console_script, run_ctl

pytestmark = pytest.mark.slow

# A token of no known family: redaction keeps it, as it would keep a secret it does not know.
SECRET = b"qx7Vb9Lr2mKp4Zt8Wn3Hs6Jd1Fg5Ac0YeTu"
SKILL_SESSION = "4438ec3f-cef8-537e-8237-ef36ba665ed7"
_PROMPT = b"how do i do /remote-control"


def _home(tmp_path: Path) -> Path:
    """Real transcripts where the agents put them; one user prompt carries a secret."""
    home = tmp_path / "home"
    parent, child = layout_claude_pair(home)
    for path in (parent, child):
        path.chmod(0o644)
    text = parent.read_bytes()
    assert _PROMPT in text
    parent.write_bytes(text.replace(_PROMPT, _PROMPT + b" with token " + SECRET, 1))
    shutil.copy(FIXTURES / "claude_skill.jsonl", claude_project(home) / f"{SKILL_SESSION}.jsonl")
    shutil.copy(FIXTURES / "codex_skill.jsonl", codex_path(home))
    return home


def _run_once(home: Path, *args: str) -> str:
    done = subprocess.run(
        [console_script("skillopsd"), "--once", *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = _home(tmp_path)
    _run_once(home)
    return home


def _ctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ctl(*args, env=daemon_env(home))


def _json(home: Path, *args: str) -> object:
    done = _ctl(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _head(home: Path) -> int:
    db = Database.open(db_path(home))
    try:
        return EventLog(db).head()
    finally:
        db.close()


def _stored(home: Path) -> dict[int, tuple[str, str, bytes]]:
    """Every event's (type, stream, stored payload bytes) by position, as on disk."""
    db = Database.open(db_path(home))
    try:
        rows = db.conn.execute("SELECT position, type, stream, data FROM events")
        return {p: (t, s, bytes(d or b"")) for p, t, s, d in rows}
    finally:
        db.close()


def _disk(home: Path) -> bytes:
    path = db_path(home)
    wal = Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _readable(home: Path) -> bytes:
    """Every payload that can still be read, and every projection row, as one blob."""
    db = Database.open(db_path(home))
    out: list[bytes] = []
    try:
        for event in EventLog(db).read():
            if not event.erased:
                out.append(repr(event.payload).encode())
        tables = [
            r[0]
            for r in db.conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND substr(name, 1, 2) = 'p_'"
            )
        ]
        for table in tables:
            out.extend(repr(row).encode() for row in db.conn.execute(f'SELECT * FROM "{table}"'))
    finally:
        db.close()
    return b"\n".join(out)


def _others(home: Path, forgotten: set[str]) -> tuple[object, ...]:
    """What every other session looks like: its row and its span tree."""
    sessions = [s for s in _json(home, "sessions") if s["session_id"] not in forgotten]
    shown = [_json(home, "session", "show", s["session_id"]) for s in sessions]
    for item in shown:
        item.pop("forgotten")
    return sessions, shown


def _annotate(home: Path, sid: str) -> int:
    db = Database.open(db_path(home))
    try:
        note = AnnotationAdded(annotation_id="a1", session_id=sid, label="bad", note="kept")
        return EventLog(db).append([NewEvent(f"session:{sid}", note)]).positions[0]
    finally:
        db.close()


def _payload(home: Path, position: int) -> object:
    db = Database.open(db_path(home))
    try:
        (event,) = EventLog(db).read(after=position - 1, upto=position)
        return event.payload
    finally:
        db.close()


def test_forget_session_end_to_end(home: Path) -> None:
    ours = session_id("claude", CLAUDE_SESSION)
    assert SECRET in _readable(home)  # the secret was stored (else the test proves nothing)
    annotation = _annotate(home, ours)
    before_others = _others(home, {ours})
    head = _head(home)

    missing = _ctl(home, "forget", CLAUDE_SESSION)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    unknown = _ctl(home, "forget", "no-such-session", "--reason", "x")
    assert unknown.returncode == 1 and unknown.stderr.strip().count("\n") == 0
    assert "unknown session 'no-such-session'" in unknown.stderr
    no_file = _ctl(home, "forget", "--source", "/nowhere.jsonl", "--reason", "x")
    assert no_file.returncode == 1 and "/nowhere.jsonl" in no_file.stderr
    dry = _ctl(home, "forget", CLAUDE_SESSION[:8], "--reason", "x", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("would erase"), dry.stderr
    assert _head(home) == head  # nothing appended by any of them

    stored = _stored(home)
    done = _json(home, "forget", CLAUDE_SESSION, "--reason", "leaked token", "--author", "alice")
    assert isinstance(done, dict)
    assert done["lines"] == 19 + 11  # the parent file and its subagent's
    assert done["derived"] > 0 and done["session_ids"] == [ours]
    erased = set(_json(home, "log", "--type", "PayloadsErased")[0]["payload"]["positions"])
    assert len(erased) == done["events"]
    assert {stored[p][0] for p in erased} >= {"TranscriptLineCaptured", "SpanDerived"}

    # The bytes are gone: every erased payload as it was stored, and the secret itself.
    disk = _disk(home)
    assert SECRET not in disk
    for position in erased:
        blob = stored[position][2]
        assert len(blob) < 16 or blob not in disk, position
    assert SECRET not in _readable(home)

    assert _ctl(home, "verify").returncode == 0
    check = _ctl(home, "rebuild", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert _others(home, {ours}) == before_others
    assert _payload(home, annotation) == AnnotationAdded(
        annotation_id="a1", session_id=ours, label="bad", note="kept"
    )

    listed = _ctl(home, "sessions")
    assert ours not in listed.stdout and "1 forgotten" in listed.stdout
    (tomb,) = _json(home, "sessions", "--forgotten")
    assert (tomb["session_id"], tomb["author"], tomb["reason"]) == (ours, "alice", "leaked token")
    for ident in (CLAUDE_SESSION, ours, ours[:8]):
        shown = _ctl(home, "session", "show", ident)
        assert shown.returncode == 0, shown.stderr
        assert "forgotten" in shown.stdout and "by alice: leaked token" in shown.stdout

    # Not derived back into existence: by rederive, nor by the daemon's next start.
    assert _json(home, "rederive")["appended"] == 0
    _run_once(home)
    assert ours not in {s["session_id"] for s in _json(home, "sessions")}
    again = _ctl(home, "forget", CLAUDE_SESSION, "--reason", "again")
    assert again.returncode == 0 and "nothing to erase" in again.stdout
    assert len(_json(home, "log", "--type", "PayloadsErased")) == 1
    assert _ctl(home, "log").returncode == 0  # erased events are listed, not a crash
    assert _ctl(home, "verify").returncode == 0


def test_forget_one_file_derives_the_rest_again(home: Path) -> None:
    ours = session_id("claude", CLAUDE_SESSION)
    before = _json(home, "session", "show", ours)
    child = claude_project(home) / CLAUDE_SESSION / "subagents" / f"agent-{CLAUDE_AGENT}.jsonl"
    done = _json(home, "forget", "--source", str(child), "--reason", "subagent read .env")
    assert done["lines"] == 11 and done["scope"] == "source"
    after = _json(home, "session", "show", ours)
    assert after["session"] is not None
    assert 0 < len(after["spans"]) < len(before["spans"])
    (tomb,) = after["forgotten"]
    assert tomb["scope"] == "source" and tomb["reason"] == "subagent read .env"
    assert "a file of it forgotten" in _ctl(home, "session", "show", ours).stdout
    assert SECRET in _readable(home)  # the parent's lines (and the secret) were not in scope
    assert _ctl(home, "verify").returncode == 0
    assert _ctl(home, "rebuild", "--check").returncode == 0
    # Deriving again appends nothing new: what remains is already derived.
    assert _json(home, "rederive")["appended"] == 0


def test_lines_appended_after_forget_are_new_content(home: Path) -> None:
    ours = session_id("claude", CLAUDE_SESSION)
    parent = claude_project(home) / f"{CLAUDE_SESSION}.jsonl"
    lines = parent.read_bytes().splitlines(keepends=True)
    assert _ctl(home, "forget", ours, "--reason", "secret").returncode == 0
    # The agent goes on writing the same file: those lines are captured and derived.
    later = [line for line in lines if b'"type":"user"' in line and SECRET not in line][:2]
    with parent.open("ab") as fh:
        fh.writelines(later)
    _run_once(home)
    shown = _json(home, "session", "show", ours)
    assert shown["session"] is not None and shown["forgotten"]
    assert SECRET not in _readable(home)
    assert _ctl(home, "verify").returncode == 0
    assert _ctl(home, "rebuild", "--check").returncode == 0


def test_a_derivation_racing_a_forget_is_not_appended(home: Path) -> None:
    """A deriver that read the lines before a forget committed appends nothing after it."""
    path = db_path(home)
    db = Database.open(path)
    other = Database.open(path)  # the process that forgets
    try:
        deriver = SessionDeriver(db, deriver_version=99)
        key = resolve_session(deriver, CLAUDE_SESSION)
        assert key is not None

        def derive_then_forgotten(agent: str, native: str, sources: list, **kw: int):
            derived = derive_session(agent, native, sources, **kw)
            if native == CLAUDE_SESSION:
                other_deriver = SessionDeriver(other)
                execute(other, plan_session(other, other_deriver, key), reason="r", author="a")
            return derived

        deriver._derive = derive_then_forgotten
        head = EventLog(db).head()
        result = deriver.derive({key})
        stream = f"session:{key.session_id}"
        late = [e for e in EventLog(db).read(after=head, stream=stream)]
        assert result.appended == 0 and late == []
    finally:
        other.close()
        db.close()


def _inject_old_session(home: Path) -> tuple[str, str]:
    """A Codex session whose lines were captured in 2020 (real lines, old ``captured_at``):
    appended straight to the log, as an old database would hold it. Returns (session, source)."""
    db = Database.open(db_path(home))
    try:
        log = EventLog(db)
        lines = [
            e.payload
            for e in log.read(types=["TranscriptLineCaptured"])
            if not e.erased
            and isinstance(e.payload, TranscriptLineCaptured)
            and e.payload.agent == "codex"
        ]
        assert lines
        old = "old-source-0001"
        tracked = SourceFileTracked(
            agent="codex",
            source_id=old,
            path=str(home / "gone" / "rollout-old.jsonl"),
            device=0,
            inode=0,
            fingerprint="0" * 16,
            generation=1,
            session="old-thread",
        )
        log.append(
            [NewEvent(f"source:{old}", tracked)]
            + [
                NewEvent(
                    f"source:{old}",
                    TranscriptLineCaptured(
                        agent="codex",
                        source_id=old,
                        generation=1,
                        offset=line.offset,
                        line=line.line,
                        captured_at=f"2020-01-01T00:00:{i % 60:02d}.000000Z",
                        session="old-thread",
                    ),
                )
                for i, line in enumerate(lines)
            ]
        )
    finally:
        db.close()
    return session_id("codex", "old-thread"), old


def test_retention_forgets_sessions_captured_long_ago(home: Path) -> None:
    """``--retain DAYS`` forgets sessions whose newest line was captured before the cut-off."""
    old_id, old = _inject_old_session(home)
    assert _json(home, "rederive")["sessions"] == 1
    before = {s["session_id"] for s in _json(home, "sessions")}
    assert old_id in before and len(before) == 4

    _run_once(home, "--retain", "30")
    after = {s["session_id"] for s in _json(home, "sessions")}
    assert after == before - {old_id}
    (record,) = _json(home, "log", "--type", "PayloadsErased")
    payload = record["payload"]
    assert payload["scope"] == "retention" and payload["author"] == "skillopsd"
    assert payload["session_ids"] == [old_id] and payload["source_ids"] == [old]
    assert _ctl(home, "verify").returncode == 0
    assert _ctl(home, "rebuild", "--check").returncode == 0
    # A second pass finds nothing more to forget; without --retain nothing is forgotten.
    _run_once(home, "--retain", "30")
    _run_once(home)
    assert len(_json(home, "log", "--type", "PayloadsErased")) == 1


def test_a_running_daemon_forgets_and_retains(tmp_path: Path) -> None:
    """With the daemon following: a forget's bytes leave the WAL it writes to, the daemon
    does not derive the session back, and retention runs again at every rescan."""
    home = _home(tmp_path)
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--retain", "30", "--rescan-interval", "0.3", env=env)
    try:
        # Read-only commands refuse a database the daemon has not created yet (review K2).
        daemon.wait_for(
            lambda: db_path(home).exists() and len(_json(home, "sessions")) == 3, timeout=60
        )
        ours = session_id("claude", CLAUDE_SESSION)
        done = _json(home, "forget", CLAUDE_SESSION, "--reason", "leaked token")
        assert done["lines"] > 0 and done["wal_cleared"], done
        assert SECRET not in _disk(home)
        old_id, _old = _inject_old_session(home)
        daemon.wait_for(lambda: len(_json(home, "log", "--type", "PayloadsErased")) == 2)
        (_, record) = _json(home, "log", "--type", "PayloadsErased")
        assert record["payload"]["scope"] == "retention"
        assert record["payload"]["session_ids"] == [old_id]
        time.sleep(1)  # a few rescans: nothing derived back, nothing forgotten twice
        listed = {s["session_id"] for s in _json(home, "sessions")}
        assert ours not in listed and old_id not in listed and len(listed) == 2
        assert len(_json(home, "log", "--type", "PayloadsErased")) == 2
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert SECRET not in _disk(home)
    assert _ctl(home, "verify").returncode == 0
    assert _ctl(home, "rebuild", "--check").returncode == 0

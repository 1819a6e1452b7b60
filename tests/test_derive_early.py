"""Deriving sessions beside a backfill's capture appends exactly what deriving after it does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from skillopsd.deriving import POOL_MIN_SESSIONS, EarlyDerivation, SessionDeriver
from skillopsd.events import Database, EventLog
from skillopsd.projections import ProjectionEngine, default_projections
from skillopsd.sources import Capturer, full_pass, resolve_roots

from ._capture_helpers import FIXTURES, claude_project, codex_path, layout_claude_pair
from ._daemon import daemon_env
from .conftest import console_script

_ORIGINAL = "4438ec3f-cef8-537e-8237-ef36ba665ed7"  # claude_skill.jsonl's session id
_SESSIONS = POOL_MIN_SESSIONS + 3  # the copies, the parent with its subagent, the Codex one


def _home(tmp_path: Path) -> Path:
    """Claude sessions, one with a subagent file read after every main file of its project
    (the walk lists a folder's files before its subfolders), and a Codex session."""
    home = tmp_path / "home"
    text = (FIXTURES / "claude_skill.jsonl").read_text()
    for n in range(POOL_MIN_SESSIONS + 1):
        native = f"00000000-0000-4000-8000-{n:012d}"
        (claude_project(home) / f"{native}.jsonl").write_text(text.replace(_ORIGINAL, native))
    layout_claude_pair(home)
    shutil.copy(FIXTURES / "codex_skill.jsonl", codex_path(home))
    return home


def _log(db: Database) -> list[tuple[int, str, str, str, bytes]]:
    """Every event but the captured lines (whose payloads hold the capture time), in order."""
    with db.read():
        return [
            (e.position, e.stream, e.type, e.event_id, e.data)
            for e in EventLog(db).read()
            if e.type != "TranscriptLineCaptured"
        ]


def _backfill(
    home: Path, db_path: Path, *, early: bool, between: bool = False
) -> tuple[Database, EarlyDerivation | None]:
    """Capture ``home`` (each file committed on its own, as a large backfill's batches are),
    deriving beside it if ``early``; then derive every session, as the daemon does.
    ``between``: a line is appended to a session's file after its early derivation is done,
    and captured, before the derivation that appends."""
    db = Database.open(db_path)
    deriver = SessionDeriver(db, workers=2)
    started = EarlyDerivation(deriver, workers=2) if early else None
    capturer = Capturer(db, on_batch=lambda _n: started.committed() if started else None)

    def plan(files: list) -> None:  # type: ignore[type-arg]
        if started is not None:
            assert started.plan(files) == _SESSIONS

    def read(path: Path) -> None:
        if started is not None:
            started.read(path)
        capturer.flush()

    roots = resolve_roots(env={}, home=home)
    full_pass(capturer, roots, plan, read)
    if between:
        if started is not None:
            for pending in started._started.values():  # every early derivation done
                pending.future.result()
        grown = claude_project(home) / "00000000-0000-4000-8000-000000000000.jsonl"
        with grown.open("a") as f:
            f.write(json.dumps({"type": "user", "sessionId": grown.stem, "uuid": "late"}) + "\n")
        full_pass(capturer, roots)
    deriver.derive(deriver.all_sessions(), early=started)
    return db, started


def test_early_derivation_appends_what_deriving_after_capture_appends(tmp_path: Path) -> None:
    home = _home(tmp_path)
    after, _ = _backfill(home, tmp_path / "after.db", early=False)
    beside, early = _backfill(home, tmp_path / "beside.db", early=True)
    try:
        assert early is not None
        # The parent waited for its subagent's file: every early derivation was used.
        assert early.started == early.used == _SESSIONS
        assert _log(beside) == _log(after)
        for projection in default_projections():
            if projection.name == "skill_history":
                continue  # holds recording times
            assert (
                ProjectionEngine(beside, [projection]).digest()
                == ProjectionEngine(after, [projection]).digest()
            )
    finally:
        after.close()
        beside.close()


def test_a_session_changed_after_its_early_derivation_is_derived_again(tmp_path: Path) -> None:
    after, _ = _backfill(_home(tmp_path / "a"), tmp_path / "a.db", early=False, between=True)
    beside, early = _backfill(_home(tmp_path / "b"), tmp_path / "b.db", early=True, between=True)
    try:
        assert early is not None
        assert early.started == _SESSIONS and early.used == _SESSIONS - 1

        def derived(db: Database) -> list[tuple[str, str, bytes]]:
            return [(s, t, d) for _, s, t, _, d in _log(db) if s.startswith("session:")]

        assert derived(beside) == derived(after)
        with beside.read() as conn:
            (lines,) = conn.execute(
                "SELECT count(*) FROM events WHERE type = 'TranscriptLineCaptured'"
            ).fetchone()
        with after.read() as conn:
            assert conn.execute(
                "SELECT count(*) FROM events WHERE type = 'TranscriptLineCaptured'"
            ).fetchone() == (lines,)
    finally:
        after.close()
        beside.close()


@pytest.mark.slow
def test_daemon_deriving_beside_capture_gives_the_same_views(tmp_path: Path) -> None:
    """The real daemon, told to derive with two workers (as on an idle machine) and with
    none, on the same files: the same events and the same views."""
    home = _home(tmp_path)
    env = daemon_env(home)
    dbs = {}
    for workers in ("2", "1"):
        db_path = tmp_path / f"w{workers}.db"
        args = ["--once", "--db", str(db_path), "--log-level", "info", "--derive-workers", workers]
        out = subprocess.run(
            [console_script("skillopsd"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        derived = [
            json.loads(line) for line in out.stderr.splitlines() if '"sessions derived"' in line
        ]
        assert [d["sessions"] for d in derived] == [_SESSIONS]
        assert derived[0]["beside_capture"] == (_SESSIONS if workers == "2" else 0)
        check = subprocess.run(
            [console_script("skillopsctl"), "--db", str(db_path), "rebuild", "--check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0 and "digests match" in check.stdout
        dbs[workers] = Database.open(db_path)
    try:
        assert _log(dbs["2"]) == _log(dbs["1"])
        for projection in default_projections():
            if projection.name != "skill_history":  # holds recording times
                assert (
                    ProjectionEngine(dbs["2"], [projection]).digest()
                    == ProjectionEngine(dbs["1"], [projection]).digest()
                )
    finally:
        for db in dbs.values():
            db.close()

"""Real corpus sessions on a temporary HOME, captured and derived by a real skillopsd."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from skillopsd.events import Database
from skillopsd.projections.session_views import SessionView, SpanView, list_sessions, spans_of

from ._capture_helpers import CORPUS
from ._daemon import daemon_env, db_path
from .conftest import console_script

# Real sessions chosen for what they hold: failures, blocked calls, both agents.
FAILURES_AND_BLOCKS = "5b613073-e70b-48a1-b6ae-c6aaa99ec2b1"  # claude: 5 failed, 3 blocked
CODEX_FAILURE = "019ed72c-3617-71c0-b9fa-c2e2a1d766e3"  # codex: 1 failed call
ONE_BLOCK = "39714332-b062-4fa5-b12c-8aa6b3006beb"  # claude: 1 blocked
SMALL_FAILURE = "be1a18de-2cb7-4306-972b-1c58b5256718"  # claude: 1 failed call
CHOSEN = (FAILURES_AND_BLOCKS, CODEX_FAILURE, ONE_BLOCK, SMALL_FAILURE)


def home_with(dest: Path, natives: tuple[str, ...] = CHOSEN) -> Path:
    """A HOME holding only the corpus transcripts of the sessions ``natives``."""
    with tarfile.open(CORPUS) as tar:
        members = [m for m in tar.getmembers() if any(n in m.name for n in natives)]
        assert len(members) >= len(natives), "a chosen session is missing from the corpus"
        tar.extractall(dest, members=members, filter="data")
    return dest


def run_once(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``skillopsd --once`` on ``home``: capture and derive what is there."""
    done = subprocess.run(
        [console_script("skillopsd"), "--once", *args],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def derived(home: Path) -> dict[str, tuple[SessionView, list[SpanView]]]:
    """Every session of ``home``'s database with its spans, as the CLI reads them."""
    db = Database.open(db_path(home))
    try:
        with db.read() as conn:
            return {s.session_id: (s, spans_of(conn, s.session_id)) for s in list_sessions(conn)}
    finally:
        db.close()
